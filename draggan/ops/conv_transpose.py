"""Strided transposed convolution as ``stride**2`` ordinary convolutions (polyphase form).

``F.conv_transpose2d`` exports to ONNX ``ConvTranspose``, whose gradient ONNX Runtime's
training API does not implement on CPU (no ``ConvTransposeGrad`` kernel). Each output phase
``(ry, rx)`` of a stride-``s`` transposed convolution is an ordinary convolution of the input
with the sub-kernel ``w[..., ry::s, rx::s]``; the phases are interleaved and the padding
cropped. Same multiply-adds as the transposed convolution, and only ``Conv``, ``Gather``, ``Pad``,
``Reshape`` and ``Slice`` in the graph, all of which have gradients there.
Agrees with ``F.conv_transpose2d`` to float32 rounding (different summation order).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _pair(value: int | list[int] | tuple[int, ...]) -> tuple[int, int]:  # (y, x)
    if isinstance(value, int):
        return value, value
    first, second = (int(v) for v in value)
    return first, second


def conv_transpose2d_polyphase(
    x: torch.Tensor,  # [N, C_in, H, W]
    w: torch.Tensor,  # [C_in, C_out // groups, kh, kw] (conv_transpose2d's layout)
    stride: int | list[int] = 2,
    padding: int | list[int] = 0,  # [py, px] as F.conv_transpose2d
    groups: int = 1,
) -> torch.Tensor:  # [N, C_out, (H - 1) * sy - 2 py + kh, (W - 1) * sx - 2 px + kw]
    """``F.conv_transpose2d(x, w, stride=stride, padding=padding, groups=groups)``."""
    N, _, H, W = (int(s) for s in x.shape)
    c_in, c_out_group, kh, kw = (int(s) for s in w.shape)
    sy, sx = _pair(stride)
    py, px = _pair(padding)
    c_out = c_out_group * groups
    # conv2d's layout [C_out, C_in // groups, kh, kw], flipped: a correlation then computes
    # the transposed convolution's (true) convolution of each phase.
    w = w.reshape(groups, c_in // groups, c_out_group, kh, kw).transpose(1, 2)
    w = w.reshape(c_out, c_in // groups, kh, kw)
    rows = -(-kh // sy)  # taps of the longest phase
    cols = -(-kw // sx)
    phases = []
    for ry in range(sy):
        row = []
        for rx in range(sx):
            # The phase's taps in reverse order, gathered (a flip exports as a Slice with a
            # negative step, whose gradient ONNX Runtime cannot compute).
            taps_y = list(range(ry, kh, sy))[::-1]
            taps_x = list(range(rx, kw, sx))[::-1]
            jy, jx = len(taps_y), len(taps_x)
            if jy == 0 or jx == 0:  # kernel smaller than the stride: an empty phase
                row.append(x.new_zeros([N, c_out, H + rows - 1, W + cols - 1]))
                continue
            sub = w.index_select(2, torch.tensor(taps_y, device=w.device))
            sub = sub.index_select(3, torch.tensor(taps_x, device=w.device))
            out = F.conv2d(x, sub, padding=[jy - 1, jx - 1], groups=groups)
            # [N, C_out, H + jy - 1, W + jx - 1] -> the longest phase's size
            row.append(F.pad(out, [0, cols - jx, 0, rows - jy]))
        phases.append(torch.stack(row, dim=-1))  # [N, C_out, Hp, Wp, sx]
    full = torch.stack(phases, dim=3)  # [N, C_out, Hp, sy, Wp, sx]
    full = full.reshape(N, c_out, (H + rows - 1) * sy, (W + cols - 1) * sx)
    height = (H - 1) * sy + kh  # the uncropped transposed-convolution output
    width = (W - 1) * sx + kw
    return full[:, :, py : height - py, px : width - px]
