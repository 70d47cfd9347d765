"""Regularisers of the two PTI stages.

- Noise maps (projection): penalise spatial autocorrelation so the noise inputs cannot
  carry image content, and renormalise them after every step (NVIDIA's projector).
- Locality (pivotal tuning, optional): keep the tuned generator equal to the original one
  away from the pivot (PTI's "ball holder" regulariser).
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.nn.functional as F


def noise_regularization(noise_maps: Iterable[torch.Tensor]) -> torch.Tensor:
    """Sum over maps and pyramid levels of the squared mean autocorrelation at shift 1.

    Each map [H, W] is repeatedly 2x2 average-pooled down to 8x8; at every level the mean of
    ``noise * roll(noise, 1)`` along x and along y is squared and added.
    """
    total = 0.0
    for noise_map in noise_maps:
        noise = noise_map.reshape(1, 1, *noise_map.shape[-2:])  # [1, 1, H, W]
        while True:
            total = total + (noise * torch.roll(noise, shifts=1, dims=3)).mean() ** 2
            total = total + (noise * torch.roll(noise, shifts=1, dims=2)).mean() ** 2
            if noise.shape[2] <= 8:
                break
            noise = F.avg_pool2d(noise, kernel_size=2)
    return torch.as_tensor(total)


@torch.no_grad()
def renormalize_noise(noise_maps: Iterable[torch.Tensor]) -> None:
    """In place: each map to zero mean and unit mean square."""
    for noise in noise_maps:
        noise -= noise.mean()
        noise *= noise.square().mean().rsqrt()


def locality_latent(pivot: torch.Tensor, sample: torch.Tensor, alpha: float) -> torch.Tensor:
    """The latent ``alpha`` units (L2 over the whole tensor) from ``pivot`` toward ``sample``.

    ``pivot``, ``sample``: [1, num_ws, w_dim]; returns the same shape.
    """
    direction = sample - pivot
    return pivot + alpha * direction / torch.norm(direction, p=2)
