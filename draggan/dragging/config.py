"""Drag configuration (``DragConfig``) and its values resolved for one generator (``DragParams``).

Distances are in pixels of the generated image (the generator's ``img_resolution``). The
official DragGAN GUI gives ``r1 = 3`` and ``r2 = 12`` at 512 px and scales them with the
resolution (``round(r / 512 * R)``); ``None`` here means that scaled default.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from draggan.dragging.errors import DragInputError

MODES = ("official", "fast")
TRACKING_NORMS = ("l2", "l1")
NOISE_MODES = ("const", "none")
BACKENDS = ("torch", "onnxruntime")

# The official GUI's radii at 512 px (viz/drag_widget.py) and stop distance (viz/renderer.py).
OFFICIAL_R1_AT_512 = 3.0
OFFICIAL_R2_AT_512 = 12.0
OFFICIAL_STOP_AT_512 = 2.0


@dataclass(frozen=True)
class DragConfig:
    """How to drag. Defaults are the official GUI's unless said otherwise.

    - ``mode``: 'fast' (default: features only up to ``feature_resolution`` during the
      optimisation, sampled at sub-pixel image coordinates, image rendered every
      ``render_every`` steps) or 'official' (step for step the official renderer: full
      forward every step, features upsampled to image size, integer points).
    - ``lr``: Adam step size on the optimised ws (GUI default 1e-3; the paper uses 2e-3 for
      FFHQ, AFHQ cat and LSUN car).
    - ``r1``: motion-supervision disc radius in image pixels (None: 3 at 512, scaled).
    - ``r2``: point-tracking window half-size in image pixels (None: 12 at 512, scaled).
    - ``lambda_mask``: weight of the L1 loss that keeps the fixed region's features (20).
    - ``feature_resolution``: the synthesis block whose output is the feature map (128, the
      official b128; clamped to the generator's resolution for small models).
    - ``layers``: number of leading ws optimised (6); the rest stay at their input values.
    - ``w_plus``: optimise each of the ``layers`` ws separately (True) or one w shared by
      them (False: needs ws whose first ``layers`` entries are equal, e.g. a W latent).
    - ``max_steps``: at most this many optimisation steps (the GUI has no cap; the paper's
      evaluations use 300).
    - ``stop_distance``: converged when every handle is within this many pixels of its
      target (None: the official rule, max(2, 2 R / 512)).
    - ``tracking_norm``: feature distance for point tracking, 'l2' (the code) or 'l1' (the
      paper).
    - ``render_every``: fast mode renders the image every this many steps (0: only at the
      end) and hands it to the callback; official mode renders every step anyway.
    - ``subpixel_tracking``: fast mode refines each tracked point to 1/4 px.
    - ``stall_steps``, ``stall_tolerance``: end with ``converged=False`` when no handle has
      moved more than ``stall_tolerance`` px for ``stall_steps`` steps (None: never).
    - ``noise_mode``: the generator's noise ('const' as the official renderer, or 'none').
    - ``feature_windows``: fast mode without a mask computes the feature block only in
      windows around the handles (what the step reads: the tracking window, the motion
      disc); the same values as the whole map up to rounding, several times cheaper.
    - ``backend``: what runs each step: 'torch' (PyTorch autograd and Adam) or
      'onnxruntime' (the step exported to ONNX and run by ONNX Runtime's training API;
      needs the ``onnx`` extra: ``pip install 'dragpipe[onnx]'``).
    """

    mode: str = "fast"
    lr: float = 1e-3
    r1: float | None = None
    r2: float | None = None
    lambda_mask: float = 20.0
    feature_resolution: int = 128
    layers: int = 6
    w_plus: bool = True
    max_steps: int = 300
    stop_distance: float | None = None
    tracking_norm: str = "l2"
    render_every: int = 10
    subpixel_tracking: bool = False
    stall_steps: int | None = 50
    stall_tolerance: float = 0.5
    noise_mode: str = "const"
    feature_windows: bool = True
    backend: str = "torch"

    def __post_init__(self) -> None:
        _choice("mode", self.mode, MODES)
        _choice("backend", self.backend, BACKENDS)
        if self.backend == "onnxruntime":
            from draggan.onnx.requirements import missing_training

            problem = missing_training()
            if problem is not None:
                raise DragInputError(f"DragConfig.backend 'onnxruntime': {problem}")
        _choice("tracking_norm", self.tracking_norm, TRACKING_NORMS)
        _choice("noise_mode", self.noise_mode, NOISE_MODES)
        _positive("lr", self.lr)
        _positive("r1", self.r1, optional=True)
        _positive("r2", self.r2, optional=True)
        if self.stop_distance is not None and (
            not _is_real(self.stop_distance) or self.stop_distance < 1
        ):
            # Points within 1 px of their target get no motion loss (official rule), so a
            # smaller stop distance could never be reached.
            raise DragInputError(
                f"DragConfig.stop_distance must be a number >= 1 (px) or None, "
                f"got {self.stop_distance!r}"
            )
        _positive("stall_tolerance", self.stall_tolerance)
        if not _is_real(self.lambda_mask) or self.lambda_mask < 0:
            raise DragInputError(f"DragConfig.lambda_mask must be >= 0, got {self.lambda_mask!r}")
        fr = self.feature_resolution
        if not _is_int(fr) or fr < 4 or fr & (fr - 1):
            raise DragInputError(
                f"DragConfig.feature_resolution must be a power of two >= 4 (a synthesis "
                f"block, e.g. 128), got {fr!r}"
            )
        _int_at_least("layers", self.layers, 1)
        _int_at_least("max_steps", self.max_steps, 0)
        _int_at_least("render_every", self.render_every, 0)
        if self.stall_steps is not None:
            _int_at_least("stall_steps", self.stall_steps, 1)
        for name in ("w_plus", "subpixel_tracking", "feature_windows"):
            if not isinstance(getattr(self, name), bool):
                raise DragInputError(
                    f"DragConfig.{name} must be true or false, got {getattr(self, name)!r}"
                )

    @property
    def resumable(self) -> bool:
        """Whether the drag offers ``progress.state()`` and ``resume=``: the torch backend
        does; 'onnxruntime' does not (ONNX Runtime does not expose Adam's moments)."""
        return self.backend == "torch"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict of every field."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DragConfig:
        """Inverse of ``to_dict``; unknown keys raise ``DragInputError`` naming them."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise DragInputError(
                f"unknown DragConfig keys: {', '.join(unknown)} (known: {', '.join(sorted(known))})"
            )
        return cls(**data)

    def stop_distance_at(self, img_resolution: int) -> float:
        """The convergence distance (px) for a generator of side ``img_resolution``."""
        if self.stop_distance is not None:
            return float(self.stop_distance)
        return float(max(OFFICIAL_STOP_AT_512 * img_resolution / 512, OFFICIAL_STOP_AT_512))

    def resolve(self, img_resolution: int, num_ws: int) -> DragParams:
        """The values for a generator of side ``img_resolution`` with ``num_ws`` ws."""
        if self.layers > num_ws:
            raise DragInputError(
                f"DragConfig.layers is {self.layers} but the generator has only {num_ws} ws: "
                f"use layers <= {num_ws}"
            )
        scale = img_resolution / 512
        r1 = self.r1 if self.r1 is not None else OFFICIAL_R1_AT_512 * scale
        r2 = self.r2 if self.r2 is not None else OFFICIAL_R2_AT_512 * scale
        stop = self.stop_distance_at(img_resolution)
        feature_resolution = min(self.feature_resolution, img_resolution)
        return DragParams(
            img_resolution=img_resolution,
            feature_resolution=feature_resolution,
            feature_index=int(math.log2(feature_resolution)) - 2,
            r1=max(float(r1), 1.0),
            disc_radius=max(round(r1), 1),
            window=max(round(r2), 1),
            stop_distance=float(stop),
        )


@dataclass(frozen=True)
class DragParams:
    """``DragConfig`` resolved for one generator (all distances in image pixels).

    ``r1`` is the exact disc radius of fast mode, ``disc_radius`` the official integer one
    (``round(r1)``); both at least 1 px (the official code's disc is empty, and its loss
    NaN, below 0.5 px, e.g. at 64 px). ``window`` is the tracking half-size ``round(r2)``.
    """

    img_resolution: int
    feature_resolution: int
    feature_index: int  # index of the feature block in synthesis(..., return_features=True)
    r1: float
    disc_radius: int
    window: int
    stop_distance: float


def _is_real(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise DragInputError(f"DragConfig.{name} must be one of {list(choices)}, got {value!r}")


def _positive(name: str, value: Any, optional: bool = False) -> None:
    if optional and value is None:
        return
    if not _is_real(value) or value <= 0:
        what = "a number > 0 or None" if optional else "a number > 0"
        raise DragInputError(f"DragConfig.{name} must be {what}, got {value!r}")


def _int_at_least(name: str, value: Any, low: int) -> None:
    if not _is_int(value) or value < low:
        raise DragInputError(f"DragConfig.{name} must be an integer >= {low}, got {value!r}")
