"""How the edit's pixels reach the photo inside the blend weight (colour and detail).

Every method returns an aligned-space payload premultiplied by the blend weight, so the
inverse warp filters weight and colour together (correct antialiasing at the mask's edge):

- ``residual`` (additive): payload = w * (edited - reconstruction); photo += warp(payload).
  The photo's own pixels stay where the edit did nothing; where it did, the change is added
  on top of them. The reconstruction's colour and detail errors cancel exactly.
- ``lowpass`` (over): source = edited + blur(photo_aligned - reconstruction); the edit with
  the reconstruction's low-frequency colour error corrected, pasted over the photo.
- ``paste`` (over): source = edited, pasted over the photo (what STIT and facexlib do).

For the "over" methods the photo becomes photo * (1 - warp(w)) + warp(payload).
ARCHITECTURE.md ("Composite") records the measurements that chose the default.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy import ndimage


def transfer_payload(
    method: str,
    edited: np.ndarray,  # [S, S, 3] float32, 0..255
    reconstruction: np.ndarray,  # [S, S, 3] float32, 0..255
    weight: np.ndarray,  # [S, S] float32 in 0..1
    photo_aligned: Callable[[], np.ndarray],  # () -> [S, S, 3] float32: the photo's crop
    lowpass_sigma_px: float,
) -> tuple[np.ndarray, bool]:  # ([S, S, 3] float32 premultiplied payload, additive)
    """The premultiplied payload of ``method`` and whether it is added (True) or laid over."""
    w = weight[:, :, None]
    if method == "residual":
        return w * (edited - reconstruction), True
    if method == "paste":
        return w * edited, False
    if method == "lowpass":
        error = photo_aligned() - reconstruction  # [S, S, 3]
        if lowpass_sigma_px > 0:
            error = ndimage.gaussian_filter(
                error, sigma=(lowpass_sigma_px, lowpass_sigma_px, 0), mode="nearest"
            )
        return w * (edited + error), False
    raise ValueError(f"unknown transfer method {method!r}")
