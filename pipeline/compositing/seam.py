"""Seam measure: is the blend's edge visible as an edge of its own?

``seam_ratio`` compares the gradient energy (|grad luminance|^2) of the output in the blend's
transition band (0 < weight < 1) with that of the untouched photo pixels next to it (weight
0, within ``ring_px`` of the band). The band lies between the edit's changed region and the
untouched photo, so on a seamless result it carries the photo's own texture: about 1. A
colour step between pasted and original pixels adds energy there (above 1); pasting a
detail-poor reconstruction removes it (below 1). Both are seams.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float64)


def gradient_energy(rgb: np.ndarray) -> np.ndarray:  # [H, W, 3] -> [H, W] float64
    """|grad|^2 of the luminance, central differences (one-sided at the edges)."""
    luma = rgb.astype(np.float64) @ _LUMA
    gy, gx = np.gradient(luma)
    return gx * gx + gy * gy


def seam_ratio(
    output: np.ndarray,  # [H, W, 3] 0..255
    weight: np.ndarray,  # [H, W] blend weight in 0..1
    ring_px: float,  # width of the comparison ring on each side of the band, pixels
) -> float:
    """Mean gradient energy in the transition band over that of the untouched ring beside it.

    Returns nan when the weight has no transition band.
    """
    band = (weight > 0) & (weight < 1)
    if not band.any():
        return float("nan")
    rows = np.flatnonzero(band.any(axis=1))
    cols = np.flatnonzero(band.any(axis=0))
    pad = int(np.ceil(ring_px)) + 2
    y0, y1 = max(0, rows[0] - pad), min(band.shape[0], rows[-1] + pad + 1)
    x0, x1 = max(0, cols[0] - pad), min(band.shape[1], cols[-1] + pad + 1)
    band = band[y0:y1, x0:x1]
    energy = gradient_energy(output[y0:y1, x0:x1])
    outside = weight[y0:y1, x0:x1] <= 0
    ring = (ndimage.distance_transform_edt(~band) <= ring_px) & outside
    if not ring.any():
        return float("nan")
    return float(energy[band].mean() / max(energy[ring].mean(), 1e-12))
