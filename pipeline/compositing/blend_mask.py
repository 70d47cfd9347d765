"""The blend weight in aligned space: what the edit changed, grown, limited, feathered.

1. change: per-pixel max over channels of |edited - reconstruction| (grey levels), smoothed
   by a gaussian, above a threshold: pixels where the edit really did something, not the
   generator's noise.
2. made one piece (``changed_region``): gaps narrower than twice ``close`` are closed and
   enclosed holes filled. A drag MOVES things, and a moved area's flat parts, and edges
   parallel to the motion, barely change: left out, they were holes that stayed put while
   everything around them moved, tearing the features that cross their borders.
   Grown by ``dilate`` so the whole of a moved feature and its surroundings are inside.
3. limited to the face: the convex hull of the 68 landmarks grown by ``face_grow``, and
   (``user_mask='limit'``) to the user's drag mask grown by ``dilate``; or joined with the
   drag mask (``'union'``). Also kept two pixels plus the resampling footprint away from the
   aligned image's border, so the photo never receives pixels from outside the crop.
4. feathered inwards: weight = smoothstep(distance to the region's edge / ``feather``), so it
   is exactly 0 outside the region and 1 where the change is when ``dilate >= feather``.

All lengths are fractions of the aligned side, hence proportional to the face's size.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage
from scipy.spatial import ConvexHull, QhullError

from pipeline.compositing.config import CompositeConfig

_BORDER_PX = 2  # aligned pixels kept free at the crop's edge (bilinear footprint + rounding)


def change_map(
    edited: np.ndarray,  # [S, S, 3] float32, 0..255
    reconstruction: np.ndarray,  # [S, S, 3] float32, 0..255
    config: CompositeConfig,
) -> np.ndarray:  # [S, S] bool
    """Pixels the edit changed: smoothed max-channel difference above the threshold."""
    diff = np.abs(edited.astype(np.float32) - reconstruction.astype(np.float32)).max(axis=2)
    sigma = config.diff_sigma * diff.shape[0]
    if sigma > 0:
        diff = ndimage.gaussian_filter(diff, sigma=sigma, mode="nearest")
    return diff > config.diff_threshold


def changed_region(
    edited: np.ndarray,  # [S, S, 3] float32, 0..255
    reconstruction: np.ndarray,  # [S, S, 3] float32, 0..255
    config: CompositeConfig,
) -> np.ndarray:  # [S, S] bool
    """``change_map`` made one piece: closed by ``config.close``, enclosed holes filled."""
    change = change_map(edited, reconstruction, config)
    radius = config.close * change.shape[0]
    if radius > 0 and change.any():
        pad = int(np.ceil(radius)) + 1  # so the image border does not erode the closing
        grown = np.pad(grow(change, radius), pad)
        change |= (ndimage.distance_transform_edt(grown) > radius)[pad:-pad, pad:-pad]
    return ndimage.binary_fill_holes(change)


def grow(region: np.ndarray, radius_px: float) -> np.ndarray:
    """``region`` [H, W] bool grown by ``radius_px`` (euclidean)."""
    if radius_px <= 0 or not region.any():
        return region.copy()
    if region.all():
        return region.copy()
    return ndimage.distance_transform_edt(~region) <= radius_px


def face_region(landmarks: np.ndarray | None, size: int, grow_px: float) -> np.ndarray:
    """[S, S] bool: convex hull of the landmarks [K, 2] (x, y) grown by ``grow_px``.

    Without landmarks the whole aligned image counts as the face.
    """
    if landmarks is None:
        return np.ones((size, size), dtype=bool)
    points = np.asarray(landmarks, dtype=np.float64).reshape(-1, 2)
    try:
        hull = points[ConvexHull(points).vertices]
    except (QhullError, ValueError):
        hull = points  # degenerate (collinear) landmarks: draw what there is
    canvas = Image.new("1", (size, size), 0)
    ImageDraw.Draw(canvas).polygon([(float(x), float(y)) for x, y in hull], fill=1, outline=1)
    return grow(np.asarray(canvas, dtype=bool), grow_px)


def feather_weight(region: np.ndarray, feather_px: float) -> np.ndarray:
    """[H, W] float32: smoothstep of the distance inside ``region`` over ``feather_px``."""
    if not region.any():
        return np.zeros(region.shape, dtype=np.float32)
    padded = np.pad(region, 1, constant_values=False)  # the image edge counts as outside
    inside = ndimage.distance_transform_edt(padded)[1:-1, 1:-1]
    t = np.clip(inside / max(feather_px, 1e-6), 0.0, 1.0)
    return (t * t * (3.0 - 2.0 * t)).astype(np.float32)


def blend_weight(
    edited: np.ndarray,  # [S, S, 3] float32, 0..255
    reconstruction: np.ndarray,  # [S, S, 3] float32, 0..255
    landmarks: np.ndarray | None,  # [68, 2] aligned (x, y), or None
    user_mask: np.ndarray | None,  # [S, S] 1 = may move, or None
    config: CompositeConfig,
    change: np.ndarray | None = None,  # [S, S] bool: changed_region(...) if already computed
    border_px: int = _BORDER_PX,
) -> np.ndarray:  # [S, S] float32 in 0..1
    """The aligned-space blend weight of one face's edit (0 wherever nothing may change)."""
    size = edited.shape[0]
    dilate_px = config.dilate * size
    if change is None:
        change = changed_region(edited, reconstruction, config)
    region = grow(change, dilate_px)
    if user_mask is not None and config.user_mask != "ignore":
        movable = np.asarray(user_mask) > 0.5
        if config.user_mask == "limit":
            region &= grow(movable, dilate_px)
        else:
            region |= movable
    region &= face_region(landmarks, size, config.face_grow * size)
    interior = np.zeros_like(region)
    interior[border_px : size - border_px, border_px : size - border_px] = True
    region &= interior
    return feather_weight(region, config.feather * size)
