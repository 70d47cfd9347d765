"""Dense motion between the reconstruction and the edited image (coarse-to-fine Lucas-Kanade).

A drag edit mostly MOVES things. ``estimate_flow`` finds, for each aligned pixel a, the
offset f(a) with edited(a) ~ reconstruction(a + f(a)): pyramidal, iterative Lucas-Kanade on
the luminance, with a gaussian window and a Tikhonov term so textureless areas get no
motion instead of noise. Both images come from the same generator, so brightness constancy
holds well. The flow is only trusted where the edit changed something (the caller passes
the blend weight); elsewhere it is zero.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)
_MAX_STEP = 1.0  # pixels per Lucas-Kanade update at the current pyramid level


@dataclass(frozen=True)
class FlowConfig:
    """Lucas-Kanade settings (pixels at each pyramid level; grey levels for ``ridge``)."""

    min_level_size: int = 24  # coarsest pyramid level's side
    iterations: int = 4  # Lucas-Kanade updates per level
    window_sigma: float = 2.5  # gaussian integration window
    ridge: float = 5.0  # Tikhonov term: (grey levels / px)^2 of gradient that counts as texture
    smooth_sigma: float = 1.0  # smoothing of the flow after each update


def _warp(image: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """image [H, W] sampled at (x + flow_x, y + flow_y); flow [H, W, 2]."""
    h, w = image.shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    coords = np.stack([yy + flow[:, :, 1], xx + flow[:, :, 0]])
    return ndimage.map_coordinates(image, coords, order=1, mode="nearest")


def _downsample(image: np.ndarray) -> np.ndarray:
    h, w = image.shape[0] // 2 * 2, image.shape[1] // 2 * 2
    im = image[:h, :w]
    return 0.25 * (im[0::2, 0::2] + im[1::2, 0::2] + im[0::2, 1::2] + im[1::2, 1::2])


def _upsample_flow(flow: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    h, w = shape
    zoom = (h / flow.shape[0], w / flow.shape[1], 1)
    up = ndimage.zoom(flow, zoom, order=1, mode="nearest", grid_mode=True)
    up = up[:h, :w]
    if up.shape[:2] != (h, w):
        up = np.pad(up, ((0, h - up.shape[0]), (0, w - up.shape[1]), (0, 0)), mode="edge")
    return up * np.array([w / flow.shape[1], h / flow.shape[0]], dtype=np.float32)


def estimate_flow(
    reconstruction: np.ndarray,  # [S, S, 3] float32, 0..255
    edited: np.ndarray,  # [S, S, 3] float32, 0..255
    gate: np.ndarray | None = None,  # [S, S] in 0..1: where motion is allowed (None: anywhere)
    config: FlowConfig | None = None,
) -> np.ndarray:  # [S, S, 2] float32 (dx, dy) with edited(a) ~ reconstruction(a + flow(a))
    """Backward flow from the edited image to the reconstruction, zero where ``gate`` is 0.

    The gate multiplies the flow after every update at every pyramid level, so motion
    found on a coarse level cannot leak into areas the edit left alone.
    """
    config = config or FlowConfig()
    source = reconstruction.astype(np.float32) @ _LUMA
    target = edited.astype(np.float32) @ _LUMA
    gate = np.ones_like(source) if gate is None else gate.astype(np.float32)
    pyramid = [(source, target, gate)]
    while min(pyramid[-1][0].shape) // 2 >= config.min_level_size:
        pyramid.append(tuple(_downsample(level) for level in pyramid[-1]))
    flow = np.zeros((*pyramid[-1][0].shape, 2), dtype=np.float32)
    for s, t, g in reversed(pyramid):
        if flow.shape[:2] != s.shape:
            flow = _upsample_flow(flow, s.shape)
        for _ in range(config.iterations):
            moved = _warp(s, flow)
            gy, gx = np.gradient(moved)
            diff = t - moved

            def window(v):
                return ndimage.gaussian_filter(v, config.window_sigma, mode="nearest")

            sxx, syy, sxy = window(gx * gx), window(gy * gy), window(gx * gy)
            sxt, syt = window(gx * diff), window(gy * diff)
            sxx += config.ridge
            syy += config.ridge
            det = sxx * syy - sxy * sxy
            dx = (syy * sxt - sxy * syt) / det
            dy = (sxx * syt - sxy * sxt) / det
            # At most one pixel per update and level: where nothing corresponds (new
            # content), the solve can blow up; clamped, it stays a bounded local error.
            step = np.clip(np.stack([dx, dy], -1), -_MAX_STEP, _MAX_STEP).astype(np.float32)
            flow = flow + step
            if config.smooth_sigma > 0:
                flow = ndimage.gaussian_filter(flow, (config.smooth_sigma, config.smooth_sigma, 0))
            flow *= g[:, :, None]
    return flow
