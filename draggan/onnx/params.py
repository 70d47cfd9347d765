"""What an exported drag step is built for (``ExportParams``): everything that changes its graph.

A set of artifacts serves every drag whose ``ExportParams`` are equal: the learning rate,
``lambda_mask``, the tracking settings and the points themselves are runtime inputs.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from draggan.dragging.config import DragConfig, DragParams
from draggan.dragging.errors import DragInputError

MODES = ("fast", "official")


@dataclass(frozen=True)
class ExportParams:
    """The drag-step graph's structure.

    - ``mode``: 'fast' (features at their own resolution, sampled at image pixels, exact
      disc) or 'official' (features upsampled to the image size, integer points, the
      official disc), as ``DragConfig.mode``.
    - ``handles``: number of handle points K (the graph is unrolled for K).
    - ``layers`` / ``w_plus``: the first ``layers`` ws are the trainable latent (each its
      own w, or one w shared by them); the rest is a frozen input.
    - ``feature_resolution``: the synthesis block whose output is the feature map.
    - ``r1``: fast mode's exact disc radius (px); ``disc_radius``: official mode's integer one.
    - ``noise_mode``: 'const' (the noise buffers, baked in as constants) or 'none'.
    """

    mode: str
    handles: int
    layers: int
    w_plus: bool
    feature_resolution: int
    r1: float
    disc_radius: int
    noise_mode: str

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise DragInputError(f"export: mode must be one of {list(MODES)}, got {self.mode!r}")
        if not isinstance(self.handles, int) or isinstance(self.handles, bool) or self.handles < 1:
            raise DragInputError(f"export: handles must be an integer >= 1, got {self.handles!r}")

    @classmethod
    def for_drag(cls, config: DragConfig, params: DragParams, handles: int) -> ExportParams:
        """The graph a drag with ``config`` (resolved to ``params``) and K handles needs."""
        return cls(
            mode=config.mode,
            handles=int(handles),
            layers=config.layers,
            w_plus=config.w_plus,
            feature_resolution=params.feature_resolution,
            r1=float(params.r1),
            disc_radius=int(params.disc_radius),
            noise_mode=config.noise_mode,
        )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @property
    def latent_ws(self) -> int:
        """ws rows in the trainable latent ([1, latent_ws, w_dim])."""
        return self.layers if self.w_plus else 1
