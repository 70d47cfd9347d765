"""inversion: W projection and pivotal tuning (PTI) on draggan's generator.

Library code: takes tensors, returns tensors, reports progress through callbacks.

- ``project(G, target, config, callback, resume) -> ws [1, num_ws, w_dim]``
- ``tune(G, ws, target, config, callback, resume) -> tuned copy of G``
- ``evaluate(G, ws, target) -> InversionMetrics``
- ``invert(G, target, project_config, tune_config, callback) -> InversionResult``

Images are float tensors [1, 3, R, R] in [-1, 1] at the generator's resolution.
"""

from inversion.config import PROJECT_PRESETS, ProjectConfig, TuneConfig
from inversion.errors import (
    ConfigError,
    InversionError,
    PerceptualWeightsMissing,
    ResumeMismatch,
)
from inversion.metrics import InversionMetrics, evaluate
from inversion.perceptual import check_weights
from inversion.projection import project
from inversion.pti import InversionResult, invert
from inversion.state import Progress, ProjectState, TuneState
from inversion.tuning import tune

__all__ = [
    "PROJECT_PRESETS",
    "ConfigError",
    "InversionError",
    "InversionMetrics",
    "InversionResult",
    "PerceptualWeightsMissing",
    "ProjectConfig",
    "ProjectState",
    "Progress",
    "ResumeMismatch",
    "TuneConfig",
    "TuneState",
    "check_weights",
    "evaluate",
    "invert",
    "project",
    "tune",
]
