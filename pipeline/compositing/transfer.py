"""How the edit's pixels reach the photo inside the blend weight (colour and detail).

Every method returns an aligned-space payload premultiplied by the blend weight, so the
inverse warp filters weight and colour together (correct antialiasing at the mask's edge):

- ``displace`` (additive, plus motion): the motion between reconstruction and edited image
  (``flow.estimate_flow``) moves the photo's own pixels, and what the motion does not explain
  is added as a residual: photo(p + D(p)) + warp(w * (edited - reconstruction(a + f(a)))).
  Fine detail the inversion never captured travels with the moved feature; with zero motion
  this is ``residual``.
- ``residual`` (additive): payload = w * (edited - reconstruction); photo += warp(payload).
  The photo's own pixels stay where the edit did nothing; where it did, the change is added
  on top of them. The reconstruction's colour and detail errors cancel exactly.
- ``lowpass`` (over): source = edited + blur(photo_aligned - reconstruction); the edit with
  the reconstruction's low-frequency colour error corrected, pasted over the photo.
- ``paste`` (over): source = edited, pasted over the photo (what STIT and facexlib do).

For the "over" methods the photo becomes photo * (1 - warp(w)) + warp(payload).
BENCHMARKS.md ("Composite") records the measurements that chose the default.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy import ndimage

from pipeline.compositing.flow import estimate_flow
from pipeline.compositing.warp import sample_points

_GATE_GROW = 0.005  # the flow may reach this far (fraction of the side) beyond the change
_FLOW_MARGIN = 0.1  # context around the weight's support for the flow (fraction of the side)


def transfer_payload(
    method: str,
    edited: np.ndarray,  # [S, S, 3] float32, 0..255
    reconstruction: np.ndarray,  # [S, S, 3] float32, 0..255
    weight: np.ndarray,  # [S, S] float32 in 0..1
    photo_aligned: Callable[[], np.ndarray],  # () -> [S, S, 3] float32: the photo's crop
    lowpass_sigma_px: float,
    change: np.ndarray | None = None,  # [S, S] bool: what the edit changed (``displace``)
) -> tuple[np.ndarray, bool, np.ndarray | None]:
    """Payload [S, S, 3] (premultiplied), whether it is added, and the flow [S, S, 2] or None.

    The flow (``displace`` only) is in aligned pixels, multiplied by the weight: the photo
    pixel at p takes its value from p + D(p), D being the flow carried into photo pixels.
    """
    w = weight[:, :, None]
    if method == "displace":
        flow = _flow_in_support(reconstruction, edited, weight, change)  # [S, S, 2]
        size = weight.shape[0]
        yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
        moved = sample_points(reconstruction, xx + flow[:, :, 0], yy + flow[:, :, 1])
        return w * (edited - moved), True, flow
    if method == "residual":
        return w * (edited - reconstruction), True, None
    if method == "paste":
        return w * edited, False, None
    if method == "lowpass":
        error = photo_aligned() - reconstruction  # [S, S, 3]
        if lowpass_sigma_px > 0:
            error = ndimage.gaussian_filter(
                error, sigma=(lowpass_sigma_px, lowpass_sigma_px, 0), mode="nearest"
            )
        return w * (edited + error), False, None
    raise ValueError(f"unknown transfer method {method!r}")


def _flow_in_support(
    reconstruction: np.ndarray,  # [S, S, 3]
    edited: np.ndarray,  # [S, S, 3]
    weight: np.ndarray,  # [S, S]
    change: np.ndarray | None,  # [S, S] bool
) -> np.ndarray:  # [S, S, 2], times the weight, zero outside its support
    """The edit's motion, estimated on the weight's bounding box only (plus a margin)."""
    size = weight.shape[0]
    flow = np.zeros((size, size, 2), dtype=np.float32)
    rows = np.flatnonzero(weight.max(axis=1) > 0)
    cols = np.flatnonzero(weight.max(axis=0) > 0)
    if rows.size == 0:
        return flow
    margin = int(np.ceil(_FLOW_MARGIN * size))
    y0, y1 = max(0, rows[0] - margin), min(size, rows[-1] + margin + 1)
    x0, x1 = max(0, cols[0] - margin), min(size, cols[-1] + margin + 1)
    gate = None
    if change is not None:  # motion only where the images differ, softly grown
        near = ndimage.distance_transform_edt(~change[y0:y1, x0:x1]) <= _GATE_GROW * size
        soft = ndimage.gaussian_filter(near.astype(np.float32), 0.5 * _GATE_GROW * size)
        gate = np.minimum(2.0 * soft, 1.0)
    crop = estimate_flow(reconstruction[y0:y1, x0:x1], edited[y0:y1, x0:x1], gate)
    flow[y0:y1, x0:x1] = crop * weight[y0:y1, x0:x1, None]
    return flow
