"""EXIF orientation as array transforms: stored pixels <-> upright pixels.

``upright(a, o)`` does to an [H, W, ...] array what ``PIL.ImageOps.exif_transpose`` does to
an image whose EXIF orientation tag is ``o`` (1-8); ``stored(a, o)`` undoes it. Used where a
file's own pixel grid matters (16-bit PNG samples, JPEG blocks) after the loader turned the
photo upright.
"""

from __future__ import annotations

import numpy as np

TRANSPOSING = (5, 6, 7, 8)  # orientations that swap width and height


def upright(array: np.ndarray, orientation: int) -> np.ndarray:  # [H, W, ...] -> [H', W', ...]
    """The stored pixels of a file with EXIF ``orientation``, turned as a viewer shows them."""
    if orientation == 2:
        return array[:, ::-1]
    if orientation == 3:
        return array[::-1, ::-1]
    if orientation == 4:
        return array[::-1]
    if orientation == 5:
        return array.swapaxes(0, 1)
    if orientation == 6:
        return np.rot90(array, k=-1)
    if orientation == 7:
        return np.rot90(array, k=2).swapaxes(0, 1)
    if orientation == 8:
        return np.rot90(array, k=1)
    return array


def stored(array: np.ndarray, orientation: int) -> np.ndarray:  # [H', W', ...] -> [H, W, ...]
    """Inverse of ``upright``: upright pixels back to the file's own grid."""
    inverse = {6: 8, 8: 6}.get(orientation, orientation)  # the others are their own inverse
    return upright(array, inverse)
