"""StyleGAN2 mapping network: z (+ class label c) -> ws [N, num_ws, w_dim]."""

from __future__ import annotations

import torch

from draggan.checks import GeneratorInputError, check_shape
from draggan.layers import FullyConnectedLayer


def normalize_2nd_moment(
    x: torch.Tensor, dim: int = 1, eps: float = 1e-8
) -> torch.Tensor:  # [N, C] -> [N, C]
    """Scale each vector to unit root-mean-square."""
    return x * (x.square().mean(dim=dim, keepdim=True) + eps).rsqrt()


class MappingNetwork(torch.nn.Module):
    """``num_layers`` equalised-lr FC layers with lrelu; ``w_avg`` buffer for truncation.

    Unlike NVIDIA's training code, ``w_avg`` is never updated here (this generator is for
    inversion and editing, not GAN training); it comes from the checkpoint.
    """

    def __init__(
        self,
        z_dim: int,
        c_dim: int,
        w_dim: int,
        num_ws: int | None,
        num_layers: int = 8,
        embed_features: int | None = None,  # None: w_dim
        layer_features: int | None = None,  # None: w_dim
        activation: str = "lrelu",
        lr_multiplier: float = 0.01,
        w_avg_beta: float | None = 0.995,  # None: no w_avg buffer (no truncation)
    ) -> None:
        super().__init__()
        self.z_dim = z_dim
        self.c_dim = c_dim
        self.w_dim = w_dim
        self.num_ws = num_ws
        self.num_layers = num_layers
        self.w_avg_beta = w_avg_beta
        if embed_features is None:
            embed_features = w_dim
        if c_dim == 0:
            embed_features = 0
        if layer_features is None:
            layer_features = w_dim
        features = [z_dim + embed_features] + [layer_features] * (num_layers - 1) + [w_dim]
        if c_dim > 0:
            self.embed = FullyConnectedLayer(c_dim, embed_features)
        for idx in range(num_layers):
            layer = FullyConnectedLayer(
                features[idx],
                features[idx + 1],
                activation=activation,
                lr_multiplier=lr_multiplier,
            )
            setattr(self, f"fc{idx}", layer)
        if num_ws is not None and w_avg_beta is not None:
            self.register_buffer("w_avg", torch.zeros([w_dim]))

    def forward(
        self,
        z: torch.Tensor | None,  # [N, z_dim]
        c: torch.Tensor | None = None,  # [N, c_dim]; required when c_dim > 0
        truncation_psi: float = 1.0,
        truncation_cutoff: int | None = None,  # truncate ws[:, :cutoff]; None: all
    ) -> torch.Tensor:  # [N, num_ws, w_dim] ([N, w_dim] when num_ws is None)
        """Map latents to ws, then pull the first ``truncation_cutoff`` ws toward ``w_avg``."""
        x = None
        if self.z_dim > 0:
            check_shape(z, "z", ["N", self.z_dim])
            x = normalize_2nd_moment(z.to(torch.float32))
        if self.c_dim > 0:
            if c is None:
                raise GeneratorInputError(
                    f"this generator is conditional: pass c [N, {self.c_dim}] (a class label)"
                )
            check_shape(c, "c", ["N", self.c_dim])
            if x is not None and c.shape[0] != x.shape[0]:
                raise GeneratorInputError(
                    f"z and c batch sizes differ: {x.shape[0]} vs {c.shape[0]}"
                )
            y = normalize_2nd_moment(self.embed(c.to(torch.float32)))
            x = torch.cat([x, y], dim=1) if x is not None else y
        for idx in range(self.num_layers):
            x = getattr(self, f"fc{idx}")(x)
        if self.num_ws is not None:
            x = x.unsqueeze(1).repeat([1, self.num_ws, 1])  # [N, num_ws, w_dim]
        if truncation_psi != 1:
            if not hasattr(self, "w_avg"):
                raise GeneratorInputError(
                    "truncation_psi != 1 needs w_avg, but this mapping network has none "
                    "(w_avg_beta=None); use truncation_psi=1"
                )
            if self.num_ws is None or truncation_cutoff is None:
                x = self.w_avg.lerp(x, truncation_psi)
            else:
                x = torch.cat(
                    [
                        self.w_avg.lerp(x[:, :truncation_cutoff], truncation_psi),
                        x[:, truncation_cutoff:],
                    ],
                    dim=1,
                )
        return x
