"""Bilinear sampling written from ``Floor``, ``Gather`` and arithmetic, for exported graphs.

ONNX Runtime's training API has no gradient for ``GridSample``, so the exported drag step
samples feature maps with this: the four neighbours of each point are gathered from the
flattened map (``Gather`` has a gradient: a scatter-add) and blended with the weights
``grid_sample`` uses, in its order of additions. Coordinates are in the map's own index
space (0 .. size - 1 between the first and the last sample); they carry no gradient.
"""

from __future__ import annotations

import torch


def sample_bilinear(
    flat: torch.Tensor,  # [C, H * W] the map, row-major
    height: int,
    width: int,
    x: torch.Tensor,  # [M] column coordinates, float32
    y: torch.Tensor,  # [M] row coordinates, float32
    border: bool,  # True: clamp into the map ('border'); False: zeros outside ('zeros')
) -> torch.Tensor:  # [C, M]
    """``grid_sample`` at index-space points, with its ``border`` or ``zeros`` padding."""
    if border:
        x = x.clamp(0, width - 1)
        y = y.clamp(0, height - 1)
    x0 = torch.floor(x)
    y0 = torch.floor(y)
    x1 = x0 + 1
    y1 = y0 + 1
    out = None
    # grid_sample's weights and order: nw, ne, sw, se.
    for cx, cy, wx, wy in (
        (x0, y0, x1 - x, y1 - y),
        (x1, y0, x - x0, y1 - y),
        (x0, y1, x1 - x, y - y0),
        (x1, y1, x - x0, y - y0),
    ):
        inside = (cx >= 0) & (cx <= width - 1) & (cy >= 0) & (cy <= height - 1)
        index = (cy.clamp(0, height - 1) * width + cx.clamp(0, width - 1)).to(torch.int64)
        weight = wx * wy * inside.to(flat.dtype)  # [M]
        term = flat.index_select(1, index) * weight  # [C, M]
        out = term if out is None else out + term
    return out


def pixel_to_map(
    coord: torch.Tensor,  # [...] image-pixel coordinate (pixel centres at integers)
    resolution: int,  # image side R
    size: int,  # map side h
) -> torch.Tensor:  # [...] map index coordinate
    """Where image pixel ``coord`` lies on a map of side ``size`` covering the same square:
    ``grid_sample(align_corners=False)``'s normalise-then-unnormalise, step for step."""
    grid = (2 * coord + 1) / resolution - 1
    return ((grid + 1) * size - 1) / 2


def _linear_taps(size_in: int, size_out: int) -> tuple[list[int], list[int], list[float]]:
    """``F.interpolate(mode='bilinear', align_corners=False)``'s source taps along one axis:
    (first index, second index, weight of the second) per output index, computed in float32
    as torch's CPU kernel does."""
    scale = torch.tensor(size_in / size_out, dtype=torch.float32)
    dst = torch.arange(size_out, dtype=torch.float32)
    src = (scale * (dst + 0.5) - 0.5).clamp(min=0)
    first = src.to(torch.int64)
    second = torch.where(first < size_in - 1, first + 1, first)
    lam = (src - first.to(torch.float32)).clamp(0, 1)
    return first.tolist(), second.tolist(), lam.tolist()


def upsample_bilinear(
    feat: torch.Tensor,  # [N, C, h, w]
    size: int,  # output side
) -> torch.Tensor:  # [N, C, size, size]
    """``F.interpolate(feat, [size, size], mode='bilinear', align_corners=False)`` from
    ``Gather`` and arithmetic (ONNX Runtime has no CPU gradient for ``Resize``): columns are
    blended first, then rows, with the same taps and weights."""
    out = feat
    for dim in (3, 2):
        first, second, lam = _linear_taps(int(feat.shape[dim]), size)
        shape = [1, 1, 1, 1]
        shape[dim] = size
        w1 = torch.tensor(lam, dtype=feat.dtype, device=feat.device).reshape(shape)
        w0 = 1 - w1
        a = out.index_select(dim, torch.tensor(first, device=feat.device))
        b = out.index_select(dim, torch.tensor(second, device=feat.device))
        out = a * w0 + b * w1
    return out
