"""The projection's per-step schedules (NVIDIA's ``projector.py``, as PTI uses them)."""

from __future__ import annotations

import math

from inversion.config import ProjectConfig


def learning_rate(config: ProjectConfig, step: int) -> float:
    """Learning rate at ``step`` (0-based): linear ramp-up, then cosine ramp-down to 0."""
    t = step / config.num_steps
    ramp = min(1.0, (1.0 - t) / config.lr_rampdown)
    ramp = 0.5 - 0.5 * math.cos(ramp * math.pi)
    ramp = ramp * min(1.0, t / config.lr_rampup)
    return config.initial_learning_rate * ramp


def latent_noise_scale(config: ProjectConfig, step: int, w_std: float) -> float:
    """Std of the Gaussian noise added to the latent at ``step``: decays to 0 at the ramp end."""
    t = step / config.num_steps
    return w_std * config.initial_noise_factor * max(0.0, 1.0 - t / config.noise_ramp_length) ** 2
