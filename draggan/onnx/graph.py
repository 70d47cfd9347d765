"""The drag step as a module to export: generator forward to the feature block + DragGAN's loss.

``DragStepGraph`` holds the generator (frozen) and one trainable parameter, ``latent``: the
first ``layers`` ws (or one w shared by them). Its forward is the loss of one step of
``draggan.drag`` at the orientation of the official renderer at HEAD (XingangPan/DragGAN
336f120, viz/renderer.py): for each handle p with target t, d = (t - p) / |t - p|, over the
disc of points q around p, ``l1(F(q) detached, F(q + d))``, summed over the handles farther
than 1 px from their target; plus ``lambda_mask`` times the fixed-region L1 against the
initial features. Tracking is not in the graph: the caller tracks on the features the graph
returns and passes the handles in.

ONNX has no stop-gradient, so the detached side is an input: ``feat_ref`` is this latent's
feature map, taken by the caller from an evaluation pass of the same graph (the value
``F(q).detach()`` reads). The graph samples ``F(q)`` from it and ``F(q + d)`` from its own,
differentiable features, with ``bilinear.sample_bilinear``, and official mode upsamples with
``bilinear.upsample_bilinear`` (ONNX Runtime's training API has no CPU gradient for
``GridSample`` or ``Resize``).

Inputs (float32):
- ``handles`` [K, 2], ``targets`` [K, 2]: (x, y) image pixels (official: integer handles);
- ``feat_ref`` [1, C, h, h]: the features of the current latent (no gradient);
- ``feat0`` [1, C, h, h]: the features of the initial latent (the mask term's reference);
- ``fixed`` [1, 1, h, h] (fast: the fraction of fixed pixels per feature cell) or
  [1, 1, R, R] (official: 1 where the image must stay); zeros for no mask;
- ``lambda_mask`` []: the mask term's weight;
- ``ws_rest`` [1, num_ws - layers, w_dim]: the frozen ws (absent when layers == num_ws).
Outputs: ``loss`` [1] (what the optimiser minimises), ``loss_motion`` [1], ``loss_mask`` [1],
``features`` [1, C, h, h].
"""

from __future__ import annotations

import torch

from draggan.dragging.fast import disc_offsets
from draggan.onnx.bilinear import pixel_to_map, sample_bilinear, upsample_bilinear
from draggan.onnx.params import ExportParams

OFFICIAL_EPS = 1e-7  # the official renderer's d = (t - p) / (|t - p| + 1e-7)


def input_names(has_rest: bool) -> list[str]:
    names = ["handles", "targets", "feat_ref", "feat0", "fixed", "lambda_mask"]
    return names + (["ws_rest"] if has_rest else [])


OUTPUT_NAMES = ["loss", "loss_motion", "loss_mask", "features"]


class DragStepGraph(torch.nn.Module):
    """One drag step's forward and loss (see the module docstring)."""

    def __init__(self, G: torch.nn.Module, spec: ExportParams) -> None:
        super().__init__()
        self.synthesis = G.synthesis
        self.spec = spec
        self.resolution = int(G.img_resolution)
        self.latent = torch.nn.Parameter(torch.zeros(1, spec.latent_ws, int(G.w_dim)))
        if spec.mode == "fast":
            offsets = disc_offsets(spec.r1).to(torch.float32)  # [M, 2] exact disc
        else:
            # Candidates around the integer point; the official (skewed) disc is chosen among
            # them in the graph. The skew is below 1 px, so r + 1 covers it.
            span = spec.disc_radius + 1
            steps = torch.arange(-span, span + 1, dtype=torch.float32)
            off_y, off_x = torch.meshgrid(steps, steps, indexing="ij")
            offsets = torch.stack([off_x.reshape(-1), off_y.reshape(-1)], dim=1)
            # The official disc's coordinates, linspace(0, R, R), exactly as torch makes them.
            self.register_buffer("skewed_axis", torch.linspace(0, self.resolution, self.resolution))
        self.register_buffer("offsets", offsets)

    def forward(
        self,
        handles: torch.Tensor,  # [K, 2]
        targets: torch.Tensor,  # [K, 2]
        feat_ref: torch.Tensor,  # [1, C, h, h]
        feat0: torch.Tensor,  # [1, C, h, h]
        fixed: torch.Tensor,  # [1, 1, h, h] (fast) or [1, 1, R, R] (official)
        lambda_mask: torch.Tensor,  # []
        ws_rest: torch.Tensor | None = None,  # [1, num_ws - layers, w_dim]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        spec = self.spec
        head = self.latent if spec.w_plus else self.latent.expand(-1, spec.layers, -1)
        ws = head if ws_rest is None else torch.cat([head, ws_rest], dim=1)
        feat = self.synthesis.features_at(
            ws, spec.feature_resolution, noise_mode=spec.noise_mode, fused_modconv=True
        )
        if spec.mode == "fast":
            motion = self._fast_motion(feat, feat_ref, handles, targets)
            mask = ((feat - feat0).abs() * fixed).mean()
        else:
            feat_up = upsample_bilinear(feat, self.resolution)  # [1, C, R, R]
            motion = self._official_motion(feat_up, feat_ref, handles, targets)
            feat0_up = upsample_bilinear(feat0, self.resolution)
            mask = (feat_up * fixed - feat0_up * fixed).abs().mean()  # F.l1_loss
        loss = motion + lambda_mask * mask
        # [1] each (ONNX Runtime's training graph hands the loss out as [1]).
        return loss.reshape(1), motion.reshape(1), mask.reshape(1), feat

    def _fast_motion(
        self,
        feat: torch.Tensor,  # [1, C, h, h] live
        feat_ref: torch.Tensor,  # [1, C, h, h] detached copy
        handles: torch.Tensor,  # [K, 2]
        targets: torch.Tensor,  # [K, 2]
    ) -> torch.Tensor:  # []
        """Fast mode: the exact disc around sub-pixel handles, points inside the image."""
        R = self.resolution
        step = targets - handles  # [K, 2]
        length = torch.sqrt((step * step).sum(dim=1))  # [K]
        active = length > 1
        unit = step / torch.where(active, length, torch.ones_like(length)).unsqueeze(1)
        px = handles[:, :1] + self.offsets[:, 0]  # [K, M]
        py = handles[:, 1:] + self.offsets[:, 1]
        weight = ((px >= 0) & (px <= R - 1) & (py >= 0) & (py <= R - 1)).to(feat.dtype)
        here = self._sample(feat_ref, px, py, border=True, pixel=True)  # [C, K, M]
        ahead = self._sample(
            feat, px + unit[:, :1], py + unit[:, 1:], border=True, pixel=True
        )  # [C, K, M]
        return self._disc_terms(here, ahead, weight, active)

    def _official_motion(
        self,
        feat_up: torch.Tensor,  # [1, C, R, R] live
        feat_ref: torch.Tensor,  # [1, C, h, h] detached copy
        handles: torch.Tensor,  # [K, 2] integer (x, y)
        targets: torch.Tensor,  # [K, 2]
    ) -> torch.Tensor:  # []
        """Official mode: the skewed disc of integer pixels, F(q + d) by ``grid_sample``
        (align_corners=True, zeros outside) on the upsampled map."""
        R = self.resolution
        col, row = handles[:, :1], handles[:, 1:]  # [K, 1]
        step = targets - handles  # [K, 2] (dx, dy)
        length = torch.sqrt((step * step).sum(dim=1))  # [K]
        active = length > 1
        unit = step / (length + OFFICIAL_EPS).unsqueeze(1)
        cx = col + self.offsets[:, 0]  # [K, S] integer pixels around the point
        cy = row + self.offsets[:, 1]
        inside = (cx >= 0) & (cx <= R - 1) & (cy >= 0) & (cy <= R - 1)
        sx = self.skewed_axis[cx.clamp(0, R - 1).to(torch.int64)]
        sy = self.skewed_axis[cy.clamp(0, R - 1).to(torch.int64)]
        dy, dx = sy - row, sx - col
        in_disc = torch.sqrt(dy * dy + dx * dx) < self.spec.disc_radius
        weight = (inside & in_disc).to(feat_up.dtype)  # [K, S]
        here = self._sample(feat_ref, cx, cy, border=True, pixel=True)  # [C, K, S]
        # grid_sample(align_corners=True)'s normalise-then-unnormalise of q + d.
        gx = (cx + unit[:, :1]) / (R - 1) * 2 - 1
        gy = (cy + unit[:, 1:]) / (R - 1) * 2 - 1
        ahead = self._sample(
            feat_up, (gx + 1) / 2 * (R - 1), (gy + 1) / 2 * (R - 1), border=False, pixel=False
        )
        return self._disc_terms(here, ahead, weight, active)

    def _sample(
        self,
        feat: torch.Tensor,  # [1, C, H, W]
        x: torch.Tensor,  # [K, M]
        y: torch.Tensor,  # [K, M]
        border: bool,
        pixel: bool,  # True: x, y are image pixels (map the map's own coordinates)
    ) -> torch.Tensor:  # [C, K, M]
        channels, height, width = (int(s) for s in feat.shape[1:])
        K, M = (int(s) for s in x.shape)
        if pixel:
            x = pixel_to_map(x, self.resolution, width)
            y = pixel_to_map(y, self.resolution, height)
        flat = feat.reshape(channels, height * width)
        out = sample_bilinear(flat, height, width, x.reshape(-1), y.reshape(-1), border)
        return out.reshape(channels, K, M)

    @staticmethod
    def _disc_terms(
        here: torch.Tensor,  # [C, K, M]
        ahead: torch.Tensor,  # [C, K, M]
        weight: torch.Tensor,  # [K, M] 1 for the disc's points
        active: torch.Tensor,  # [K] bool: farther than 1 px from the target
    ) -> torch.Tensor:  # []
        """Sum over active handles of the mean |F(q) - F(q + d)| over their disc points."""
        channels = int(here.shape[0])
        per_point = (here - ahead).abs().sum(dim=0)  # [K, M]
        terms = (per_point * weight).sum(dim=1) / (weight.sum(dim=1) * channels)  # [K]
        return torch.where(active, terms, torch.zeros_like(terms)).sum()
