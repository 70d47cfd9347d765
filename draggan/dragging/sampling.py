"""Sampling a feature map at image-pixel coordinates (fast mode).

Image pixel (x, y) is the centre of pixel column x, row y of the R x R image. A feature map
of side h covers the same square, so pixel x lies at feature coordinate
``(x + 0.5) * h / R - 0.5``: exactly where ``F.interpolate(feat, R, mode='bilinear',
align_corners=False)`` reads it. Sampling there with ``grid_sample(align_corners=False,
padding_mode='border')`` therefore gives the values of the official upsampled map at integer
pixels, and continues them smoothly between pixels, without ever building the R x R copy.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def pixel_to_grid(
    points: torch.Tensor,  # [..., 2] (x, y) image pixels
    resolution: int,  # image side R
) -> torch.Tensor:  # [..., 2] grid_sample coordinates in [-1, 1] (align_corners False)
    """Normalised sampling coordinates of image pixels (independent of the map's size)."""
    return (2 * points + 1) / resolution - 1


def sample_features(
    feat: torch.Tensor,  # [1, C, h, w]
    points: torch.Tensor,  # [M, 2] (x, y) image pixels, float
    resolution: int,  # image side R
) -> torch.Tensor:  # [C, M]
    """Bilinear feature values at image pixels (differentiable in ``feat``)."""
    grid = pixel_to_grid(points.to(device=feat.device, dtype=feat.dtype), resolution)
    grid = grid.reshape(1, 1, -1, 2)  # [1, 1, M, 2]
    out = F.grid_sample(feat, grid, mode="bilinear", padding_mode="border", align_corners=False)
    return out[0, :, 0, :]
