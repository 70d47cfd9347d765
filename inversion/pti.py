"""The whole PTI inversion: projection, pivotal tuning and the metrics of both."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from inversion.checks import generator_device
from inversion.config import ProjectConfig, TuneConfig
from inversion.metrics import InversionMetrics, image_metrics
from inversion.perceptual import Perceptual, check_weights
from inversion.projection import project
from inversion.state import Progress
from inversion.tuning import tune


@dataclass(frozen=True)
class InversionResult:
    """Pivot latent, tuned generator, and how well each stage reproduces the target."""

    ws: torch.Tensor  # [1, num_ws, w_dim] pivot
    generator: torch.nn.Module  # tuned copy of the input generator
    projection_metrics: InversionMetrics  # original G rendering the pivot
    tuning_metrics: InversionMetrics  # tuned G rendering the pivot


def invert(
    G: torch.nn.Module,
    target: torch.Tensor,  # [1, 3, R, R] float in [-1, 1], R = G.img_resolution
    project_config: ProjectConfig | None = None,
    tune_config: TuneConfig | None = None,
    callback: Callable[[Progress], None] | None = None,
    *,
    identity: bool = True,
) -> InversionResult:
    """Project ``target`` (``project``), tune ``G`` around the pivot (``tune``), measure both.

    Metrics use the tuning's LPIPS network and backbone. ``callback`` gets the progress of
    both phases (``Progress.phase``). Every needed LPIPS backbone is checked before any work.
    ``G`` is not modified.
    """
    project_config = project_config or ProjectConfig()
    tune_config = tune_config or TuneConfig()
    check_weights(project_config.lpips_net, project_config.perceptual_backbone)
    check_weights(tune_config.lpips_net, tune_config.perceptual_backbone)
    perceptual = Perceptual(
        tune_config.lpips_net, tune_config.perceptual_backbone, generator_device(G)
    )

    ws = project(G, target, project_config, callback=callback)
    target = target.detach().to(ws.device, torch.float32)
    with torch.no_grad():
        before = image_metrics(
            G.synthesis(ws, noise_mode="const"), target, perceptual, identity=identity
        )
    tuned = tune(G, ws, target, tune_config, callback=callback)
    with torch.no_grad():
        after = image_metrics(
            tuned.synthesis(ws, noise_mode="const"), target, perceptual, identity=identity
        )
    return InversionResult(ws=ws, generator=tuned, projection_metrics=before, tuning_metrics=after)
