"""Affine resampling between aligned and photo pixels, antialiased in both directions.

The alignment quad is a parallelogram, so aligned <-> photo is an exact affine map
(``pipeline.alignment.transform``); there is no perspective term to estimate. Each destination
pixel is the mean of ``k x k`` bilinear samples spread evenly over its footprint in the
source, with ``k`` the ceiling of the largest source step per destination pixel: plain
bilinear when the destination is the finer grid (the aligned face is smaller than the face
in the photo), a box filter over the footprint when it is the coarser one (no aliasing when
a 1024 px crop goes back onto a 200 px face).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from pipeline.alignment.transform import AlignTransform

Box = tuple[int, int, int, int]  # x0, y0, x1, y1 (end exclusive), photo pixels

_MAX_SUPERSAMPLE = 16
_TILE_PIXELS = 1 << 21  # destination pixels per grid_sample call (bounds memory at 12 MP)


def supersample_factor(affine: np.ndarray) -> int:
    """Samples per axis for a destination pixel of ``affine`` ([2, 3], destination -> source)."""
    step = float(np.linalg.svd(np.asarray(affine, dtype=np.float64)[:, :2], compute_uv=False)[0])
    return int(min(_MAX_SUPERSAMPLE, max(1, math.ceil(step - 1e-6))))


def sample_affine(
    source: np.ndarray,  # [Hs, Ws, C] float32
    affine: np.ndarray,  # [2, 3] destination pixel centre (x, y, 1) -> source pixel centre
    box: Box,  # destination pixels to render
    supersample: int | None = None,  # None: supersample_factor(affine)
) -> np.ndarray:  # [y1 - y0, x1 - x0, C] float32
    """Render ``source`` resampled through ``affine`` on the destination pixels of ``box``.

    Pixel centres are integer coordinates in both images. Outside the source, the nearest
    edge pixel is used (callers keep their blend weights zero there).
    """
    if source.ndim != 3:
        raise ValueError(f"source must be [H, W, C], got shape {source.shape}")
    channels = source.shape[2]
    x0, y0, x1, y1 = box
    out_h, out_w = y1 - y0, x1 - x0
    out = np.zeros((max(out_h, 0), max(out_w, 0), channels), dtype=np.float32)
    if out_h <= 0 or out_w <= 0:
        return out
    k = supersample_factor(affine) if supersample is None else int(supersample)
    a = np.asarray(affine, dtype=np.float64)
    offsets = (np.arange(k, dtype=np.float64) + 0.5) / k - 0.5  # sub-pixel sample offsets
    src = torch.from_numpy(np.ascontiguousarray(source, dtype=np.float32))
    src = src.permute(2, 0, 1).unsqueeze(0)  # [1, C, Hs, Ws]
    xs = np.arange(x0, x1, dtype=np.float64)
    rows_per_tile = max(1, _TILE_PIXELS // (out_w * k * k))
    for r0 in range(0, out_h, rows_per_tile):
        ys = np.arange(y0 + r0, y0 + min(out_h, r0 + rows_per_tile), dtype=np.float64)
        acc = None
        for dy in offsets:
            for dx in offsets:
                gx = xs[None, :] + dx
                gy = ys[:, None] + dy
                sx = a[0, 0] * gx + a[0, 1] * gy + a[0, 2]  # [h, w] source x
                sy = a[1, 0] * gx + a[1, 1] * gy + a[1, 2]  # [h, w] source y
                sampled = _grid_sample(src, sx, sy, "bilinear")  # [1, C, h, w]
                acc = sampled if acc is None else acc + sampled
        tile = (acc / float(k * k))[0].permute(1, 2, 0).numpy()
        out[r0 : r0 + tile.shape[0]] = tile
    return out


def sample_points(
    source: np.ndarray,  # [Hs, Ws, C] float32
    xs: np.ndarray,  # [h, w] source x of each output pixel (pixel centres are integers)
    ys: np.ndarray,  # [h, w] source y
    mode: str = "bilinear",  # or 'bicubic'
) -> np.ndarray:  # [h, w, C] float32
    """``source`` sampled at arbitrary points (edge pixels repeat outside)."""
    src = torch.from_numpy(np.ascontiguousarray(source, dtype=np.float32))
    src = src.permute(2, 0, 1).unsqueeze(0)  # [1, C, Hs, Ws]
    return _grid_sample(src, xs, ys, mode)[0].permute(1, 2, 0).numpy()


def _grid_sample(src: torch.Tensor, xs: np.ndarray, ys: np.ndarray, mode: str) -> torch.Tensor:
    """src [1, C, Hs, Ws] at pixel coordinates xs, ys [h, w] -> [1, C, h, w]."""
    src_h, src_w = src.shape[-2:]
    # Normalised coordinates of grid_sample(align_corners=False).
    grid = np.stack([(2.0 * xs + 1.0) / src_w - 1.0, (2.0 * ys + 1.0) / src_h - 1.0], -1)
    return F.grid_sample(
        src,
        torch.from_numpy(grid.astype(np.float32)).unsqueeze(0),  # [1, h, w, 2]
        mode=mode,
        padding_mode="border",
        align_corners=False,
    )


def warp_to_photo(
    aligned: np.ndarray,  # [S, S, C] float32
    transform: AlignTransform,
    box: Box,
) -> np.ndarray:  # [y1 - y0, x1 - x0, C] float32
    """The aligned image rendered onto the photo pixels of ``box``."""
    return sample_affine(aligned, transform.affine_photo_to_aligned(), box)


def warp_to_aligned(
    photo: np.ndarray,  # [H, W, C] float32
    transform: AlignTransform,
) -> np.ndarray:  # [S, S, C] float32
    """The photo resampled onto the aligned grid (what the align stage cropped)."""
    size = int(transform.output_size)
    return sample_affine(photo, transform.affine_aligned_to_photo(), (0, 0, size, size))


def support_box(weight: np.ndarray, transform: AlignTransform) -> Box | None:
    """Photo pixels that an aligned-space weight map [S, S] can reach (None when all zero).

    The aligned bounding box of ``weight > 0`` is grown by one aligned pixel (the bilinear
    footprint), mapped to the photo, grown by the supersampling footprint, and clipped to
    the photo.
    """
    rows = np.flatnonzero(weight.max(axis=1) > 0)
    cols = np.flatnonzero(weight.max(axis=0) > 0)
    if rows.size == 0:
        return None
    ax0, ax1 = cols[0] - 1.0, cols[-1] + 1.0
    ay0, ay1 = rows[0] - 1.0, rows[-1] + 1.0
    corners = np.array([[ax0, ay0], [ax1, ay0], [ax0, ay1], [ax1, ay1]], dtype=np.float64)
    a = transform.affine_aligned_to_photo()
    photo_pts = corners @ a[:, :2].T + a[:, 2]
    margin = 1.0 + 0.5 * supersample_factor(transform.affine_photo_to_aligned())
    width, height = transform.photo_size
    x0 = max(0, int(math.floor(photo_pts[:, 0].min() - margin)))
    y0 = max(0, int(math.floor(photo_pts[:, 1].min() - margin)))
    x1 = min(width, int(math.ceil(photo_pts[:, 0].max() + margin)) + 1)
    y1 = min(height, int(math.ceil(photo_pts[:, 1].max() + margin)) + 1)
    if x1 <= x0 or y1 <= y0:
        return None
    return (x0, y0, x1, y1)
