"""Which parts of the feature map a fast-mode step reads (so only those are computed).

Without a mask, a step reads the features only around the handles: tracking compares the
integer pixels of the (2 window + 1)^2 square around each rounded handle (and, sub-pixel,
points within 1 px of the winner); the motion loss reads the disc of radius r1 around the
tracked handle and the points one pixel ahead of them. ``feature_windows`` turns that reach
into boxes of the feature map (the cells bilinear sampling reads, see ``sampling.py``), for
``SynthesisNetwork.features_in``.
"""

from __future__ import annotations

import math

import torch

Box = tuple[int, int, int, int]  # (top, left, bottom, right) feature cells, half-open

# Windows that together cover more than this share of the map are not worth it: the map
# is computed whole.
MAX_SHARE = 0.5


def reach(window: int, r1: float) -> int:
    """Pixels around a handle's rounded position that one step may read: the tracking
    window, 1 px of sub-pixel refinement, the motion disc (< r1) around the tracked handle
    and the unit step along the drag, plus 1 px of margin."""
    return window + 1 + math.ceil(r1) + 1 + 1


def feature_windows(
    handles: torch.Tensor,  # [K, 2] (x, y) image pixels
    reach_px: int,
    resolution: int,  # image side R
    size: int,  # feature map side h
) -> list[Box] | None:  # one box per handle; None: compute the whole map
    """Boxes of feature cells holding every sample within ``reach_px`` of each handle.

    A pixel x is read at feature coordinate u = (x + 0.5) h / R - 0.5, from cells floor(u)
    and floor(u) + 1 (bilinear); pixels are clipped to the image first, cells to the map."""

    def cells(lo: int, hi: int) -> tuple[int, int]:
        first = math.floor((max(lo, 0) + 0.5) * size / resolution - 0.5)
        last = math.floor((min(hi, resolution - 1) + 0.5) * size / resolution - 0.5) + 1
        return max(first, 0), min(last + 1, size)

    boxes = []
    for x, y in handles.tolist():
        cx, cy = round(x), round(y)
        top, bottom = cells(cy - reach_px, cy + reach_px)
        left, right = cells(cx - reach_px, cx + reach_px)
        boxes.append((top, left, bottom, right))
    area = sum((bottom - top) * (right - left) for top, left, bottom, right in boxes)
    return None if area > MAX_SHARE * size * size else boxes


def paste(
    parts: list[torch.Tensor],  # per box [1, C, b - t, r - l]
    boxes: list[Box],
    size: int,
) -> torch.Tensor:  # [1, C, size, size], zero outside the boxes
    """The windows placed on a map of zeros (differentiable in the parts; nothing reads
    the zeros: the boxes hold everything the step samples)."""
    canvas = parts[0].new_zeros(parts[0].shape[0], parts[0].shape[1], size, size)
    for part, (top, left, bottom, right) in zip(parts, boxes, strict=True):
        canvas[:, :, top:bottom, left:right] = part
    return canvas
