"""'official' mode: the official DragGAN renderer's step, operation for operation.

Reproduces ``Renderer._render_drag_impl`` of XingangPan/DragGAN ``viz/renderer.py`` at
commit 336f120 (the loss as revised in d0422b1, "Revise to be consistent with paper",
which is the paper's eq. 1): the feature block's output is bilinearly resized to the image
size (align_corners False) every step; points are integer [row, col]; tracking searches a
square window clipped to the image for the feature nearest to the initial handle's feature
in the initial image; motion supervision compares the features on a disc drawn on
``linspace(0, R, R)`` coordinates (the official up-to-1-px skew, kept so trajectories match
recorded official runs), detached, with the features one unit step AHEAD along the drag
direction, ``F(q + d)``, sampled by ``grid_sample(align_corners=True)`` and kept in the
graph: the gradient pulls the content at q + d toward the features now at q. The fixed
region is held to the initial features by an L1 loss. Our handles are (x, y); this module
converts to the official [row, col] at its boundary.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from draggan.dragging.config import DragConfig, DragParams
from draggan.dragging.inputs import DragInputs
from draggan.dragging.tracking import feature_distance


def upsample_features(
    feat: torch.Tensor,  # [1, C, h, w] feature block output
    resolution: int,
) -> torch.Tensor:  # [1, C, R, R]
    """Bilinear resize to the image size, align_corners False (the official default)."""
    return F.interpolate(feat, size=[resolution, resolution], mode="bilinear", align_corners=False)


def skewed_grid(resolution: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Official disc coordinates: rows and columns ``linspace(0, R, R)`` ([R, R] each, 'ij')."""
    axis = torch.linspace(0, resolution, resolution, device=device)
    rows, cols = torch.meshgrid(axis, axis, indexing="ij")
    return rows, cols


def track_points(
    feat_up: torch.Tensor,  # [1, C, R, R] current features at image size
    refs: torch.Tensor,  # [K, C] initial handle features
    points: list[list[int]],  # K x [row, col] current integer points
    window: int,  # half-size of the square search window (px)
    norm: str = "l2",
) -> list[list[int]]:  # K x [row, col]
    """Nearest-feature search in a (2 window + 1)^2 square clipped to the image; the first
    minimum in row-major order wins (as ``torch.min``)."""
    _, _, height, width = feat_up.shape
    out = []
    with torch.no_grad():
        for (row, col), ref in zip(points, refs, strict=True):
            top, bottom = max(row - window, 0), min(row + window + 1, height)
            left, right = max(col - window, 0), min(col + window + 1, width)
            patch = feat_up[0, :, top:bottom, left:right]  # [C, h', w']
            dist = feature_distance(patch, ref.reshape(-1, 1, 1), norm, dim=0)  # [h', w']
            index = int(torch.min(dist.reshape(-1), dim=0).indices)
            span = right - left
            out.append([index // span + top, index % span + left])
    return out


def motion_loss(
    feat_up: torch.Tensor,  # [1, C, R, R] current features at image size (with grad)
    points: list[list[int]],  # K x [row, col] tracked points
    targets: list[list[float]],  # K x [row, col]
    disc_radius: int,
    grid: tuple[torch.Tensor, torch.Tensor],  # from skewed_grid
) -> torch.Tensor | None:  # scalar, None when every point is within 1 px of its target
    """Sum over points farther than 1 px from their target of
    ``mean |sg(F(q)) - F(q + d)|`` over the official (skewed) disc around the point
    (d: unit drag direction; F(q + d) read by ``grid_sample(align_corners=True)``)."""
    _, _, height, width = feat_up.shape
    rows, cols = grid
    total = None
    for (row, col), (t_row, t_col) in zip(points, targets, strict=True):
        step = torch.tensor([t_col - col, t_row - row], dtype=torch.float32)  # (dx, dy)
        length = torch.linalg.norm(step)
        if not length > 1:
            continue
        radius = ((rows - row) ** 2 + (cols - col) ** 2) ** 0.5
        disc_rows, disc_cols = torch.where(radius < disc_radius)
        unit = (step / (length + 1e-7)).to(feat_up.device)
        # align_corners=True normalisation of the point one unit step ahead: q + d.
        ahead_y = (disc_rows + unit[1]) / (height - 1) * 2 - 1
        ahead_x = (disc_cols + unit[0]) / (width - 1) * 2 - 1
        sample_grid = torch.stack([ahead_x, ahead_y], dim=-1).reshape(1, 1, -1, 2)
        ahead = F.grid_sample(feat_up.float(), sample_grid, align_corners=True)[:, :, 0]
        here = feat_up[:, :, disc_rows, disc_cols].detach()  # [1, C, M]
        term = F.l1_loss(here, ahead)  # [1, C, M] each side
        total = term if total is None else total + term
    return total


def mask_loss(
    feat_up: torch.Tensor,  # [1, C, R, R]
    feat0_up: torch.Tensor,  # [1, C, R, R] initial features
    fixed: torch.Tensor,  # [R, R] 1 where the image must stay
) -> torch.Tensor:  # scalar
    """``mean |F * fixed - F0 * fixed|`` over the whole tensor (the official L1)."""
    weight = fixed.reshape(1, 1, *fixed.shape)
    return F.l1_loss(feat_up * weight, feat0_up * weight)


class OfficialMode:
    """The per-step operations of 'official' mode for one drag (holds the initial features,
    the reference features and the integer points)."""

    renders_every_step = True

    def __init__(
        self,
        params: DragParams,
        inputs: DragInputs,
        config: DragConfig,
        feature_dtype: torch.dtype = torch.float32,  # the feature block's compute dtype
    ) -> None:
        self.params = params
        # Official points are integer [row, col]; targets are used as given.
        self.points = [[round(float(y)), round(float(x))] for x, y in inputs.handles.tolist()]
        self.targets = [[float(y), float(x)] for x, y in inputs.targets.tolist()]
        self.fixed = inputs.fixed  # [R, R] or None
        self.norm = config.tracking_norm
        self.dtype = feature_dtype
        device = inputs.ws.device
        self.grid = skewed_grid(params.img_resolution, device)
        self.feat0_up: torch.Tensor | None = None
        self.refs: torch.Tensor | None = None

    def features(self, feat: torch.Tensor) -> torch.Tensor:  # [1, C, h, w] -> [1, C, R, R]
        # The official code upsamples the block's output in the block's own dtype (float16
        # for fp16 blocks on CUDA); our generator hands out float32 copies, which convert
        # back to the same float16 values exactly.
        return upsample_features(feat.to(self.dtype), self.params.img_resolution)

    def windows(self) -> None:
        """The official step reads (and upsamples) the whole feature map."""
        return None

    def start(self, feat: torch.Tensor) -> None:
        """Keep the initial features and each handle's feature (first step only)."""
        self.feat0_up = feat.detach()
        self.refs = torch.stack([self.feat0_up[0, :, r, c] for r, c in self.points])  # [K, C]

    def get_handles(self) -> torch.Tensor:  # [K, 2] (x, y) float64
        """The points the next tracking starts from (for a resumable state)."""
        return torch.tensor([[c, r] for r, c in self.points], dtype=torch.float64)

    def set_handles(self, handles: torch.Tensor) -> None:  # [K, 2] (x, y), integer values
        self.points = [[round(float(y)), round(float(x))] for x, y in handles.tolist()]

    def track(self, feat: torch.Tensor) -> torch.Tensor:  # [K, 2] (x, y) float64
        self.points = track_points(feat, self.refs, self.points, self.params.window, self.norm)
        return torch.tensor([[c, r] for r, c in self.points], dtype=torch.float64)

    def done(self) -> bool:
        """The official stop rule, evaluated in float32 as the official code does."""
        for (row, col), (t_row, t_col) in zip(self.points, self.targets, strict=True):
            step = torch.tensor([t_col - col, t_row - row], dtype=torch.float32)
            if torch.linalg.norm(step) > self.params.stop_distance:
                return False
        return True

    def losses(self, feat: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        motion = motion_loss(feat, self.points, self.targets, self.params.disc_radius, self.grid)
        fixed = None if self.fixed is None else mask_loss(feat, self.feat0_up, self.fixed)
        return motion, fixed
