"""Generator configuration: the hyperparameters that fix a StyleGAN2 generator's structure.

Field names follow NVIDIA's constructor arguments (stylegan2-ada-pytorch
``training/networks.py``) so a checkpoint's ``init_kwargs`` map onto them one to one;
``draggan.official_pickle`` resolves the two code bases' layouts and defaults into this.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

ARCHITECTURES = ("orig", "skip", "resnet")


@dataclass(frozen=True)
class GeneratorConfig:
    """Structure of a StyleGAN2 generator (mapping + synthesis).

    Defaults are stylegan2-ada-pytorch's when a kwarg is absent (``conv_clamp=None``,
    ``num_fp16_res=0``). Official FFHQ checkpoints use ``conv_clamp=256``.
    """

    img_resolution: int = 1024  # output side, a power of two >= 4
    img_channels: int = 3
    z_dim: int = 512
    c_dim: int = 0  # conditioning label size (0: unconditional)
    w_dim: int = 512
    # Mapping network.
    mapping_layers: int = 8
    mapping_lr_multiplier: float = 0.01
    mapping_layer_features: int | None = None  # None: w_dim
    embed_features: int | None = None  # None: w_dim (only used when c_dim > 0)
    w_avg_beta: float | None = 0.995
    # Synthesis network.
    channel_base: int = 32768
    channel_max: int = 512
    num_fp16_res: int = 0  # fp16 in the N highest-resolution blocks (CUDA only)
    conv_clamp: float | None = None  # clamp activations to +-conv_clamp (None: off)
    architecture: str = "skip"  # 'orig' | 'skip' | 'resnet'
    resample_filter: tuple[int, ...] = (1, 3, 3, 1)
    use_noise: bool = True
    # Extra, informational: where the config came from (e.g. 'stylegan2-ada-pytorch').
    source: str = field(default="dragpipe", compare=False)

    def __post_init__(self) -> None:
        res = self.img_resolution
        if res < 4 or res & (res - 1):
            raise ValueError(f"img_resolution must be a power of two >= 4, got {res}")
        if self.architecture not in ARCHITECTURES:
            raise ValueError(
                f"architecture must be one of {ARCHITECTURES}, got {self.architecture!r}"
            )
        object.__setattr__(self, "resample_filter", tuple(int(v) for v in self.resample_filter))

    @property
    def block_resolutions(self) -> list[int]:
        """[4, 8, ..., img_resolution]."""
        return [2**i for i in range(2, self.img_resolution.bit_length())]

    def channels(self, resolution: int) -> int:
        """Feature channels of the block at ``resolution``: min(channel_base // res, channel_max)."""
        return min(self.channel_base // resolution, self.channel_max)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (tuples become lists)."""
        out = dataclasses.asdict(self)
        out["resample_filter"] = list(self.resample_filter)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GeneratorConfig:
        """Inverse of ``to_dict``; unknown keys raise ``ValueError`` naming them."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown generator config keys: {', '.join(unknown)}")
        return cls(**data)
