"""'fast' mode: the official algorithm on the feature map at its own resolution.

Differences from 'official' (each keeps what the user asked for and cuts cost):
- the synthesis runs only up to the feature block while optimising (``features_at``): no
  ToRGB, no higher block; the image is rendered every ``render_every`` steps and at the end;
- no R x R upsampled copy of the features: features are sampled at image-pixel coordinates
  (``sampling.sample_features``), which reads the same values the official upsampled map
  holds at integer pixels (tracking and the detached side of the motion loss, F(q)); the
  live side F(q + d) is one bilinear read of the map at the sub-pixel point (the official
  code reads the upsampled copy bilinearly: a bilinear of a bilinear), and clamps to the
  border where q + d leaves the image (official: zero padding);
- the motion disc is exact (integer offsets ``|o| < r1`` around the handle, no linspace
  skew) and follows sub-pixel handles;
- the fixed-region loss compares the feature map with the initial one at its own resolution,
  weighted by the fraction of fixed pixels in each feature cell (area-averaged mask).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from draggan.dragging.config import DragConfig, DragParams
from draggan.dragging.inputs import DragInputs
from draggan.dragging.sampling import sample_features
from draggan.dragging.tracking import track_handles
from draggan.dragging.windows import Box, feature_windows, reach


def disc_offsets(radius: float) -> torch.Tensor:  # [M, 2] (dx, dy) float64
    """Integer offsets strictly inside a disc of ``radius`` px, row-major."""
    span = math.ceil(radius)
    steps = torch.arange(-span, span + 1, dtype=torch.float64)
    off_y, off_x = torch.meshgrid(steps, steps, indexing="ij")
    offsets = torch.stack([off_x.reshape(-1), off_y.reshape(-1)], dim=1)
    return offsets[offsets.norm(dim=1) < radius]


def motion_loss(
    feat: torch.Tensor,  # [1, C, h, w] current features (with grad)
    handles: torch.Tensor,  # [K, 2] (x, y) tracked handles, float64
    targets: torch.Tensor,  # [K, 2] (x, y) float64
    offsets: torch.Tensor,  # [M, 2] from disc_offsets
    resolution: int,  # image side R
) -> torch.Tensor | None:  # scalar, None when every handle is within 1 px of its target
    """Sum over handles farther than 1 px from their target of ``mean |sg(F(q)) - F(q + d)|``
    over the disc points q around the handle inside the image (d: unit drag direction), the
    official loss since XingangPan/DragGAN d0422b1 (``viz/renderer.py`` at 336f120)."""
    total = None
    for handle, target in zip(handles, targets, strict=True):
        step = target - handle
        length = float(step.norm())
        if not length > 1:
            continue
        points = handle + offsets
        inside = ((points >= 0) & (points <= resolution - 1)).all(dim=1)
        points = points[inside]
        here = sample_features(feat, points, resolution).detach()  # [C, M]
        ahead = sample_features(feat, points + step / length, resolution)  # [C, M]
        term = F.l1_loss(here, ahead)
        total = term if total is None else total + term
    return total


def cell_weights(
    fixed: torch.Tensor,  # [R, R] 1 where the image must stay
    size: int,  # feature map side h
) -> torch.Tensor:  # [1, 1, h, h] fraction of fixed pixels per feature cell
    return F.adaptive_avg_pool2d(fixed.reshape(1, 1, *fixed.shape), size)


def mask_loss(
    feat: torch.Tensor,  # [1, C, h, w]
    feat0: torch.Tensor,  # [1, C, h, w] initial features
    weights: torch.Tensor,  # [1, 1, h, w] from cell_weights
) -> torch.Tensor:  # scalar
    """``mean |F - F0| * fixed`` over the whole map (the official L1 at feature resolution)."""
    return ((feat - feat0).abs() * weights).mean()


class FastMode:
    """The per-step operations of 'fast' mode for one drag."""

    renders_every_step = False

    def __init__(self, params: DragParams, inputs: DragInputs, config: DragConfig) -> None:
        self.params = params
        self.handles = inputs.handles.clone()  # [K, 2] (x, y) float64
        self.initial = inputs.handles.clone()
        self.targets = inputs.targets  # [K, 2] (x, y) float64
        self.norm = config.tracking_norm
        self.subpixel = config.subpixel_tracking
        fixed = inputs.fixed  # [R, R] or None
        self.offsets = disc_offsets(params.r1)
        self.weights = None if fixed is None else cell_weights(fixed, params.feature_resolution)
        self.use_windows = config.feature_windows and fixed is None
        self.reach = reach(params.window, params.r1)
        self.feat0: torch.Tensor | None = None
        self.refs: torch.Tensor | None = None

    def features(self, feat: torch.Tensor) -> torch.Tensor:  # [1, C, h, w], used as is
        return feat

    def windows(self) -> list[Box] | None:
        """The feature windows this step reads, around the handles it starts from (None:
        the whole map, with a mask or when the windows would cover most of it)."""
        if not self.use_windows:
            return None
        p = self.params
        return feature_windows(self.handles, self.reach, p.img_resolution, p.feature_resolution)

    def start(self, feat: torch.Tensor) -> None:
        """Keep the initial features and each handle's feature at its exact position."""
        self.feat0 = feat.detach()
        self.refs = sample_features(self.feat0, self.initial, self.params.img_resolution).T

    def get_handles(self) -> torch.Tensor:  # [K, 2] (x, y) float64, a copy
        """The handles the next tracking starts from (for a resumable state)."""
        return self.handles.clone()

    def set_handles(self, handles: torch.Tensor) -> None:  # [K, 2] (x, y)
        self.handles = handles.to(torch.float64).clone()

    def track(self, feat: torch.Tensor) -> torch.Tensor:  # [K, 2] (x, y) float64
        self.handles = track_handles(
            feat,
            self.refs,
            self.handles,
            self.params.window,
            self.params.img_resolution,
            self.norm,
            self.subpixel,
        )
        return self.handles

    def done(self) -> bool:
        distances = (self.targets - self.handles).norm(dim=1)
        return bool((distances <= self.params.stop_distance).all())

    def losses(self, feat: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        motion = motion_loss(
            feat, self.handles, self.targets, self.offsets, self.params.img_resolution
        )
        fixed = None if self.weights is None else mask_loss(feat, self.feat0, self.weights)
        return motion, fixed
