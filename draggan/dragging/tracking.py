"""Point tracking: find each handle again in the current features (fast mode's tracker;
``official.track_points`` is the official one).

For every handle, the candidates are the integer pixels of the square window of half-size
``window`` around the handle's current (rounded) position, clipped to the image; the winner
is the candidate whose feature is nearest to the handle's reference feature (the initial
handle's feature in the initial image), first minimum in row-major order as the official
code. Optionally the winner is refined on a quarter-pixel grid within +-1 px.
"""

from __future__ import annotations

import torch

from draggan.dragging.sampling import sample_features

SUBPIXEL_STEP = 0.25


def feature_distance(
    feats: torch.Tensor,  # [..., C, ...] candidate features
    ref: torch.Tensor,  # broadcastable to feats
    norm: str,  # 'l2' | 'l1'
    dim: int,  # the channel dimension
) -> torch.Tensor:  # feats' shape without ``dim``
    """L2 (the official code) or L1 (the paper) distance along the channel dimension."""
    diff = feats - ref
    if norm == "l1":
        return diff.abs().sum(dim=dim)
    return torch.linalg.norm(diff, dim=dim)


def window_pixels(
    center: tuple[int, int],  # (x, y) integer pixel
    window: int,
    resolution: int,
) -> torch.Tensor:  # [M, 2] (x, y) float64, row-major (y outer, x inner)
    """The integer pixels of the square window around ``center``, clipped to the image."""
    cx, cy = center
    xs = torch.arange(max(cx - window, 0), min(cx + window, resolution - 1) + 1)
    ys = torch.arange(max(cy - window, 0), min(cy + window, resolution - 1) + 1)
    grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([grid_x.reshape(-1), grid_y.reshape(-1)], dim=1).to(torch.float64)


def _nearest(
    feat: torch.Tensor,  # [1, C, h, w]
    ref: torch.Tensor,  # [C]
    candidates: torch.Tensor,  # [M, 2] (x, y)
    resolution: int,
    norm: str,
) -> torch.Tensor:  # [2] (x, y) float64
    values = sample_features(feat, candidates, resolution)  # [C, M]
    dist = feature_distance(values, ref.reshape(-1, 1), norm, dim=0)  # [M]
    return candidates[int(torch.min(dist, dim=0).indices)]


def track_handles(
    feat: torch.Tensor,  # [1, C, h, w] current features (any h; sampled at image pixels)
    refs: torch.Tensor,  # [K, C] reference features
    handles: torch.Tensor,  # [K, 2] (x, y) current handles, float64
    window: int,  # half-size of the search window (px)
    resolution: int,  # image side R
    norm: str = "l2",
    subpixel: bool = False,
) -> torch.Tensor:  # [K, 2] (x, y) float64
    """Tracked handle positions (integer pixels unless ``subpixel``)."""
    out = []
    with torch.no_grad():
        for handle, ref in zip(handles, refs, strict=True):
            center = (round(float(handle[0])), round(float(handle[1])))
            best = _nearest(feat, ref, window_pixels(center, window, resolution), resolution, norm)
            if subpixel:
                steps = torch.arange(-4, 5, dtype=torch.float64) * SUBPIXEL_STEP
                off_y, off_x = torch.meshgrid(steps, steps, indexing="ij")
                fine = best + torch.stack([off_x.reshape(-1), off_y.reshape(-1)], dim=1)
                fine = fine.clamp(0, resolution - 1)
                best = _nearest(feat, ref, fine, resolution, norm)
            out.append(best)
    return torch.stack(out)
