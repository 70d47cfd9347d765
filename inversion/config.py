"""Configuration of the two PTI stages: W projection (``ProjectConfig``) and pivotal tuning
(``TuneConfig``).

Defaults are PTI's released settings (danielroich/PTI ``configs/hyperparameters.py`` and its
``w_projector.py``); ``ProjectConfig.preset`` names the variants.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from inversion.errors import ConfigError

LPIPS_NETS = ("vgg", "alex")
BACKBONES = ("pretrained", "random")


def _check_choice(owner: str, name: str, value: Any, choices: tuple) -> None:
    if value not in choices:
        raise ConfigError(f"{owner}.{name} must be one of {choices}, got {value!r}")


def _check_positive(owner: str, name: str, value: float, allow_zero: bool = False) -> None:
    if value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ConfigError(f"{owner}.{name} must be {bound}, got {value!r}")


def _check_fraction(owner: str, name: str, value: float) -> None:
    if not 0 < value <= 1:
        raise ConfigError(f"{owner}.{name} must be in (0, 1], got {value!r}")


class _ConfigDict:
    """JSON round trip shared by both configs."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict of every field."""
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls, data: dict[str, Any]):
        """Inverse of ``to_dict``; unknown keys raise ``ConfigError`` naming them."""
        known = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown {cls.__name__} keys: {', '.join(unknown)}")
        return cls(**data)


@dataclass(frozen=True)
class ProjectConfig(_ConfigDict):
    """W (or W+) projection: Adam on one latent plus the per-layer noise maps.

    The learning rate is ``initial_learning_rate`` times a ramp: linear from 0 over the first
    ``lr_rampup`` of the steps, cosine down to 0 over the last ``lr_rampdown``. Gaussian noise
    of std ``w_std * initial_noise_factor * max(0, 1 - t / noise_ramp_length) ** 2`` is added
    to the latent at step fraction ``t``. Loss: LPIPS distance at ``lpips_size`` plus
    ``regularize_noise_weight`` times the noise maps' autocorrelation.
    """

    num_steps: int = 450  # PTI; NVIDIA's projector: 1000
    initial_learning_rate: float = 0.01  # PTI; NVIDIA's projector: 0.1
    lr_rampup: float = 0.05  # fraction of the steps
    lr_rampdown: float = 0.25  # fraction of the steps
    initial_noise_factor: float = 0.05
    noise_ramp_length: float = 0.75  # fraction of the steps
    regularize_noise_weight: float = 1e5
    w_avg_samples: int = 600  # PTI; NVIDIA's projector: 10000
    w_avg_seed: int = 123  # numpy RandomState seed of the z samples (as upstream)
    w_plus: bool = False  # optimise one w per layer instead of one shared w
    lpips_net: str = "vgg"  # 'vgg' | 'alex'
    lpips_size: int = 256  # images larger than this are area-downsampled for the loss
    perceptual_backbone: str = "pretrained"  # 'random': untrained backbone (tests, demo only)
    seed: int = 0  # seeds the noise-map initialisation and the per-step latent noise

    def __post_init__(self) -> None:
        owner = "ProjectConfig"
        if self.num_steps < 1:
            raise ConfigError(f"{owner}.num_steps must be >= 1, got {self.num_steps!r}")
        if self.w_avg_samples < 2:
            raise ConfigError(f"{owner}.w_avg_samples must be >= 2, got {self.w_avg_samples!r}")
        _check_positive(owner, "initial_learning_rate", self.initial_learning_rate)
        _check_fraction(owner, "lr_rampup", self.lr_rampup)
        _check_fraction(owner, "lr_rampdown", self.lr_rampdown)
        _check_fraction(owner, "noise_ramp_length", self.noise_ramp_length)
        _check_positive(owner, "initial_noise_factor", self.initial_noise_factor, True)
        _check_positive(owner, "regularize_noise_weight", self.regularize_noise_weight, True)
        _check_choice(owner, "lpips_net", self.lpips_net, LPIPS_NETS)
        _check_choice(owner, "perceptual_backbone", self.perceptual_backbone, BACKBONES)
        if self.lpips_size < 16:
            raise ConfigError(f"{owner}.lpips_size must be >= 16, got {self.lpips_size!r}")

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> ProjectConfig:
        """A named preset (see ``PROJECT_PRESETS``), with optional field overrides."""
        if name not in PROJECT_PRESETS:
            raise ConfigError(
                f"unknown projection preset {name!r}: choose one of {sorted(PROJECT_PRESETS)}"
            )
        return dataclasses.replace(PROJECT_PRESETS[name], **overrides)


PROJECT_PRESETS: dict[str, ProjectConfig] = {
    # PTI as released: W space, 450 steps, lr 0.01, w_avg from 600 samples.
    "pti": ProjectConfig(),
    # PTI's W+ projector (one w per layer), same schedule.
    "pti_wplus": ProjectConfig(w_plus=True),
    # NVIDIA's stylegan2-ada-pytorch projector.py: 1000 steps, lr 0.1, 10000 samples.
    "nvidia": ProjectConfig(num_steps=1000, initial_learning_rate=0.1, w_avg_samples=10000),
}


@dataclass(frozen=True)
class TuneConfig(_ConfigDict):
    """Pivotal tuning: Adam on all generator parameters so that G(pivot) reproduces the target.

    Loss: ``mse_weight`` x MSE + ``lpips_weight`` x LPIPS at full resolution on images in
    [-1, 1]; at most ``max_steps`` steps; stops before a step once LPIPS <= ``lpips_threshold``.
    With ``locality_regularization``, each step also renders a w moved ``locality_alpha``
    units from the pivot toward a random w (truncation ``locality_psi``) under the tuned and
    the original generator and adds ``locality_mse_weight`` x MSE + ``locality_lpips_weight``
    x LPIPS between the two (noise_mode 'none', as PTI).
    """

    learning_rate: float = 3e-4
    max_steps: int = 350
    lpips_threshold: float = 0.06  # 0 disables the early stop
    mse_weight: float = 1.0
    lpips_weight: float = 1.0
    lpips_net: str = "alex"  # 'alex' | 'vgg'
    perceptual_backbone: str = "pretrained"  # 'random': untrained backbone (tests, demo only)
    locality_regularization: bool = False
    locality_alpha: float = 30.0
    locality_mse_weight: float = 0.1
    locality_lpips_weight: float = 0.1
    locality_psi: float = 0.5
    seed: int = 0  # seeds the locality regulariser's random latents

    def __post_init__(self) -> None:
        owner = "TuneConfig"
        if self.max_steps < 0:
            raise ConfigError(f"{owner}.max_steps must be >= 0, got {self.max_steps!r}")
        _check_positive(owner, "learning_rate", self.learning_rate)
        _check_positive(owner, "lpips_threshold", self.lpips_threshold, True)
        _check_positive(owner, "mse_weight", self.mse_weight, True)
        _check_positive(owner, "lpips_weight", self.lpips_weight, True)
        _check_positive(owner, "locality_alpha", self.locality_alpha)
        _check_positive(owner, "locality_mse_weight", self.locality_mse_weight, True)
        _check_positive(owner, "locality_lpips_weight", self.locality_lpips_weight, True)
        _check_choice(owner, "lpips_net", self.lpips_net, LPIPS_NETS)
        _check_choice(owner, "perceptual_backbone", self.perceptual_backbone, BACKBONES)
