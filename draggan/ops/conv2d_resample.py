"""2-D convolution with optional FIR up/down-sampling (NVIDIA's ``conv2d_resample`` rules).

Padding is applied once, with respect to the up-sampled image. Up-sampling runs as a
stride-``up`` transposed convolution followed by FIR filtering; 1x1 kernels convolve first
and resample after (or the reverse when down-sampling), exactly as upstream chooses.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from draggan.ops.conv_transpose import conv_transpose2d_polyphase
from draggan.ops.tracing import tracing
from draggan.ops.upfirdn2d import Padding, filter_size, parse_padding, upfirdn2d


def _conv(
    x: torch.Tensor,  # [N, C_in, H, W]
    w: torch.Tensor,  # [C_out, C_in // groups, kh, kw] (transpose: [C_in, C_out // groups, kh, kw])
    stride: int = 1,
    padding: int | list[int] = 0,
    groups: int = 1,
    transpose: bool = False,
    flip_weight: bool = True,  # True: correlation (what F.conv2d does), False: convolution
    bias: torch.Tensor | None = None,  # [C_out]
) -> torch.Tensor:
    if not flip_weight and (w.shape[2] > 1 or w.shape[3] > 1):
        w = w.flip([2, 3])
    if transpose and tracing():
        return conv_transpose2d_polyphase(x, w, stride=stride, padding=padding, groups=groups)
    if transpose:
        return F.conv_transpose2d(x, w, bias, stride=stride, padding=padding, groups=groups)
    return F.conv2d(x, w, bias, stride=stride, padding=padding, groups=groups)


def conv2d_resample(
    x: torch.Tensor,  # [N, C_in, H, W]
    w: torch.Tensor,  # [C_out, C_in // groups, kh, kw], same dtype as x
    f: torch.Tensor | None = None,  # FIR filter from setup_filter (float32); None: identity
    up: int = 1,
    down: int = 1,
    padding: Padding = 0,  # with respect to the up-sampled image
    groups: int = 1,
    flip_weight: bool = True,  # True: correlation, False: convolution
    flip_filter: bool = False,
    conv_padding: bool = False,  # upfirdn2d's: zero padding inside the FIR convolution
    bias: torch.Tensor | None = None,  # [C_out] added to the result, by its last convolution
) -> torch.Tensor:  # [N, C_out, H_out, W_out]
    """Convolve ``x`` with ``w``, up-sampling by ``up`` before and down-sampling by ``down`` after."""
    if x.ndim != 4 or w.ndim != 4:
        raise ValueError(
            f"conv2d_resample: expected x [N, C, H, W] and w [O, I, kh, kw], "
            f"got {list(x.shape)} and {list(w.shape)}"
        )
    if w.dtype != x.dtype:
        raise ValueError(f"conv2d_resample: x is {x.dtype} but w is {w.dtype}")
    if up < 1 or down < 1 or groups < 1:
        raise ValueError(
            f"conv2d_resample: up, down, groups must be >= 1, got {up}, {down}, {groups}"
        )
    out_channels, in_per_group, kh, kw = (int(s) for s in w.shape)
    fw, fh = filter_size(f)
    px0, px1, py0, py1 = parse_padding(padding)

    # Account for the filter footprint of the resampling.
    if up > 1:
        px0 += (fw + up - 1) // 2
        px1 += (fw - up) // 2
        py0 += (fh + up - 1) // 2
        py1 += (fh - up) // 2
    if down > 1:
        px0 += (fw - down + 1) // 2
        px1 += (fw - down) // 2
        py0 += (fh - down + 1) // 2
        py1 += (fh - down) // 2

    # 1x1 kernel, down-sampling only: resample first, then convolve.
    if kw == 1 and kh == 1 and down > 1 and up == 1:
        x = upfirdn2d(x, f, down=down, padding=[px0, px1, py0, py1], flip_filter=flip_filter)
        return _conv(x, w, groups=groups, flip_weight=flip_weight, bias=bias)

    # 1x1 kernel, up-sampling only: convolve first, then resample.
    if kw == 1 and kh == 1 and up > 1 and down == 1:
        x = _conv(x, w, groups=groups, flip_weight=flip_weight)
        return upfirdn2d(
            x,
            f,
            up=up,
            padding=[px0, px1, py0, py1],
            gain=up**2,
            flip_filter=flip_filter,
            bias=bias,
        )

    # Down-sampling only: filter, then strided convolution.
    if down > 1 and up == 1:
        x = upfirdn2d(x, f, padding=[px0, px1, py0, py1], flip_filter=flip_filter)
        return _conv(x, w, stride=down, groups=groups, flip_weight=flip_weight, bias=bias)

    # Up-sampling: strided transposed convolution, then FIR filter.
    if up > 1:
        if groups == 1:
            w = w.transpose(0, 1)  # [C_in, C_out, kh, kw]
        else:
            w = w.reshape(groups, out_channels // groups, in_per_group, kh, kw)
            w = w.transpose(1, 2)
            w = w.reshape(groups * in_per_group, out_channels // groups, kh, kw)
        px0 -= kw - 1
        px1 -= kw - up
        py0 -= kh - 1
        py1 -= kh - up
        pxt = max(min(-px0, -px1), 0)
        pyt = max(min(-py0, -py1), 0)
        x = _conv(
            x,
            w,
            stride=up,
            padding=[pyt, pxt],
            groups=groups,
            transpose=True,
            flip_weight=not flip_weight,
        )
        x = upfirdn2d(
            x,
            f,
            padding=[px0 + pxt, px1 + pxt, py0 + pyt, py1 + pyt],
            gain=up**2,
            flip_filter=flip_filter,
            conv_padding=conv_padding,
            bias=bias if down == 1 else None,
        )
        if down > 1:
            x = upfirdn2d(x, f, down=down, flip_filter=flip_filter, bias=bias)
        return x

    # Plain convolution when the padding is symmetric and non-negative.
    if px0 == px1 and py0 == py1 and px0 >= 0 and py0 >= 0:
        return _conv(x, w, padding=[py0, px0], groups=groups, flip_weight=flip_weight, bias=bias)

    # General case (asymmetric or negative padding).
    x = upfirdn2d(x, None, padding=[px0, px1, py0, py1], flip_filter=flip_filter)
    x = _conv(x, w, groups=groups, flip_weight=flip_weight, bias=bias if down == 1 else None)
    if down > 1:
        x = upfirdn2d(x, f, down=down, flip_filter=flip_filter, bias=bias)
    return x
