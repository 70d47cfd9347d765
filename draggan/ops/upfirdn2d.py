"""FIR filtering with integer up/down-sampling (NVIDIA's ``upfirdn2d`` reference path).

Order of operations per channel: insert ``up - 1`` zeros after every pixel, pad (negative
padding crops), convolve with the FIR filter ``f``, keep every ``down``-th pixel.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

Padding = int | Sequence[int]


def parse_scaling(scaling: int | Sequence[int]) -> tuple[int, int]:
    """``s`` or ``[sx, sy]`` -> ``(sx, sy)``, each >= 1."""
    if isinstance(scaling, int):
        scaling = [scaling, scaling]
    sx, sy = (int(s) for s in scaling)
    if sx < 1 or sy < 1:
        raise ValueError(f"upfirdn2d: scaling factors must be >= 1, got {list(scaling)}")
    return sx, sy


def parse_padding(padding: Padding) -> tuple[int, int, int, int]:
    """``p``, ``[px, py]`` or ``[px0, px1, py0, py1]`` -> ``(px0, px1, py0, py1)``."""
    if isinstance(padding, int):
        padding = [padding, padding]
    padding = [int(p) for p in padding]
    if len(padding) == 2:
        px, py = padding
        padding = [px, px, py, py]
    if len(padding) != 4:
        raise ValueError(f"upfirdn2d: padding must have 1, 2 or 4 values, got {padding}")
    px0, px1, py0, py1 = padding
    return px0, px1, py0, py1


def filter_size(f: torch.Tensor | None) -> tuple[int, int]:
    """(width, height) of a 2-D ``[fh, fw]`` or separable 1-D ``[taps]`` filter; None is 1x1."""
    if f is None:
        return 1, 1
    if f.ndim not in (1, 2):
        raise ValueError(f"upfirdn2d: filter must be 1-D or 2-D, got shape {list(f.shape)}")
    return int(f.shape[-1]), int(f.shape[0])


def setup_filter(
    f: Sequence[float] | Sequence[Sequence[float]] | torch.Tensor | None,
    normalize: bool = True,
    flip_filter: bool = False,
    gain: float = 1,
    separable: bool | None = None,
) -> torch.Tensor:  # [fh, fw] float32 (or [taps] when separable)
    """Prepare a FIR filter: outer product of 1-D taps, normalised to unit DC gain.

    A 1-D filter with >= 8 taps stays separable unless ``separable`` says otherwise.
    """
    if f is None:
        f = 1
    f = torch.as_tensor(f, dtype=torch.float32)
    if f.ndim not in (0, 1, 2) or f.numel() == 0:
        raise ValueError(
            f"setup_filter: expected a non-empty 1-D or 2-D filter, got {list(f.shape)}"
        )
    if f.ndim == 0:
        f = f[None]
    if separable is None:
        separable = f.ndim == 1 and f.numel() >= 8
    if f.ndim == 1 and not separable:
        f = torch.outer(f, f)
    if normalize:
        f = f / f.sum()
    if flip_filter:
        f = f.flip(list(range(f.ndim)))
    return f * (gain ** (f.ndim / 2))


def upfirdn2d(
    x: torch.Tensor,  # [N, C, H, W]
    f: torch.Tensor | None,  # [fh, fw] or [taps] float32, from setup_filter; None: identity
    up: int | Sequence[int] = 1,
    down: int | Sequence[int] = 1,
    padding: Padding = 0,  # with respect to the up-sampled image
    flip_filter: bool = False,  # False: convolution, True: correlation
    gain: float = 1,
    conv_padding: bool = False,  # pad inside the filter convolution when possible (fast path)
    bias: torch.Tensor | None = None,  # [C] added to the result (inside the filter conv)
) -> torch.Tensor:  # [N, C, H_out, W_out]
    """Up-sample by zero insertion, pad, FIR-filter and down-sample each channel.

    ``conv_padding``: without up-sampling and with non-negative padding, symmetric per axis,
    the zeros are left to the convolution (no padded copy of ``x``; same values up to the
    kernel's rounding). ``bias`` is added by the filter convolution when nothing follows it."""
    if x.ndim != 4:
        raise ValueError(f"upfirdn2d: expected x [N, C, H, W], got {list(x.shape)}")
    if f is None:
        f = torch.ones([1, 1], dtype=torch.float32, device=x.device)
    if f.ndim not in (1, 2):
        raise ValueError(f"upfirdn2d: filter must be 1-D or 2-D, got shape {list(f.shape)}")
    N, C, H, W = (int(s) for s in x.shape)
    upx, upy = parse_scaling(up)
    downx, downy = parse_scaling(down)
    px0, px1, py0, py1 = parse_padding(padding)

    # Zero insertion: [N, C, H, 1, W, 1] -> pad -> [N, C, H * upy, W * upx].
    if upx > 1 or upy > 1:
        x = x.reshape([N, C, H, 1, W, 1])
        x = F.pad(x, [0, upx - 1, 0, 0, 0, upy - 1])
        x = x.reshape([N, C, H * upy, W * upx])

    # Pad, then crop for negative padding.
    implicit = [0, 0]
    if conv_padding and px0 == px1 >= 0 and py0 == py1 >= 0:
        implicit = [py0, px0]
    else:
        x = F.pad(x, [max(px0, 0), max(px1, 0), max(py0, 0), max(py1, 0)])
        x = x[
            :, :, max(-py0, 0) : x.shape[2] - max(-py1, 0), max(-px0, 0) : x.shape[3] - max(-px1, 0)
        ]

    # Filter (conv2d correlates, so flip for a true convolution), depthwise.
    f = f * (gain ** (f.ndim / 2))
    f = f.to(device=x.device, dtype=x.dtype)
    if not flip_filter:
        f = f.flip(list(range(f.ndim)))
    f = f[None, None].repeat([C, 1] + [1] * f.ndim)  # [C, 1, fh, fw] or [C, 1, taps]
    last = downx == 1 and downy == 1
    if f.ndim == 4:
        x = F.conv2d(x, f, bias if last else None, padding=implicit, groups=C)
        bias = None if last else bias
    else:
        x = F.conv2d(x, f.unsqueeze(2), padding=[0, implicit[1]], groups=C)
        x = F.conv2d(x, f.unsqueeze(3), padding=[implicit[0], 0], groups=C)

    if downx > 1 or downy > 1:
        x = x[:, :, ::downy, ::downx]
    if bias is not None:
        x = x + bias.to(x.dtype).reshape(1, -1, 1, 1)
    return x


def upsample2d(
    x: torch.Tensor,  # [N, C, H, W]
    f: torch.Tensor | None,  # [fh, fw] float32 from setup_filter
    up: int = 2,
    padding: Padding = 0,  # with respect to the output
    flip_filter: bool = False,
    gain: float = 1,
) -> torch.Tensor:  # [N, C, H * up, W * up]
    """Up-sample by ``up`` with the FIR filter ``f`` (gain ``up**2`` keeps the DC level)."""
    upx, upy = parse_scaling(up)
    px0, px1, py0, py1 = parse_padding(padding)
    fw, fh = filter_size(f)
    p = [
        px0 + (fw + upx - 1) // 2,
        px1 + (fw - upx) // 2,
        py0 + (fh + upy - 1) // 2,
        py1 + (fh - upy) // 2,
    ]
    return upfirdn2d(x, f, up=up, padding=p, flip_filter=flip_filter, gain=gain * upx * upy)
