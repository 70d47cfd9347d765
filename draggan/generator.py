"""The StyleGAN2 generator: ``mapping`` (z -> ws) + ``synthesis`` (ws -> image).

State-dict names, shapes and buffers are NVIDIA's (stylegan2-ada-pytorch), so weights load
with ``load_state_dict(strict=True)`` in both directions. Saving and loading files is not the
model's business: ``draggan.save_generator`` / ``draggan.load_generator``.
"""

from __future__ import annotations

import torch

from draggan.autotune import Autotuner
from draggan.config import GeneratorConfig
from draggan.mapping import MappingNetwork
from draggan.synthesis import SynthesisNetwork


class Generator(torch.nn.Module):
    """StyleGAN2 generator built from a ``GeneratorConfig``.

    Attributes: ``config``, ``z_dim``, ``c_dim``, ``w_dim``, ``num_ws``, ``img_resolution``,
    ``img_channels``; submodules ``mapping`` and ``synthesis``.
    """

    def __init__(self, config: GeneratorConfig, autotuner: Autotuner | None = None) -> None:
        """``autotuner`` picks the synthesis layers' implementations (None:
        ``Autotuner.from_environment()``: measured at first use, cached in the user's cache
        folder); it is ``G.synthesis.autotuner`` afterwards."""
        super().__init__()
        self.config = config
        self.z_dim = config.z_dim
        self.c_dim = config.c_dim
        self.w_dim = config.w_dim
        self.img_resolution = config.img_resolution
        self.img_channels = config.img_channels
        self.synthesis = SynthesisNetwork(
            w_dim=config.w_dim,
            img_resolution=config.img_resolution,
            img_channels=config.img_channels,
            channel_base=config.channel_base,
            channel_max=config.channel_max,
            num_fp16_res=config.num_fp16_res,
            architecture=config.architecture,
            resample_filter=config.resample_filter,
            conv_clamp=config.conv_clamp,
            use_noise=config.use_noise,
            autotuner=autotuner,
        )
        self.num_ws = self.synthesis.num_ws
        self.mapping = MappingNetwork(
            z_dim=config.z_dim,
            c_dim=config.c_dim,
            w_dim=config.w_dim,
            num_ws=self.num_ws,
            num_layers=config.mapping_layers,
            embed_features=config.embed_features,
            layer_features=config.mapping_layer_features,
            lr_multiplier=config.mapping_lr_multiplier,
            w_avg_beta=config.w_avg_beta,
        )

    def forward(
        self,
        z: torch.Tensor,  # [N, z_dim]
        c: torch.Tensor | None = None,  # [N, c_dim]; required when c_dim > 0
        truncation_psi: float = 1.0,
        truncation_cutoff: int | None = None,
        noise_mode: str = "const",  # 'const' | 'random' | 'none'
    ) -> torch.Tensor:  # [N, img_channels, img_resolution, img_resolution]
        """Map ``z`` to ws and synthesise the image."""
        ws = self.mapping(z, c, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff)
        return self.synthesis(ws, noise_mode=noise_mode)

    def extra_repr(self) -> str:
        c = self.config
        return (
            f"resolution={c.img_resolution}, num_ws={self.num_ws}, w_dim={c.w_dim}, "
            f"architecture={c.architecture!r}, c_dim={c.c_dim}"
        )
