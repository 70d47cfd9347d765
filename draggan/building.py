"""Building a ``Generator`` from what a checkpoint holds (``CheckpointContents``: a config
and a flat state dict), checking every tensor.

Shared by every loader (official pickles, TensorFlow pickles, dragpipe's own format): the
state must hold exactly the generator's parameters and buffers, by NVIDIA name and shape.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from draggan.config import GeneratorConfig
from draggan.errors import CheckpointError
from draggan.generator import Generator


@dataclass
class CheckpointContents:
    """What a checkpoint holds, before any network is built.

    ``state`` maps NVIDIA names to tensors; ``format`` says which writer made the file
    (e.g. 'stylegan2-ada-pytorch pickle'); ``network`` which network of the file was used
    (e.g. 'G_ema'); ``details`` extra facts for ``dragpipe inspect`` (e.g. the dragpipe
    version that wrote a native file).
    """

    config: GeneratorConfig
    state: dict[str, torch.Tensor]
    format: str
    network: str
    details: dict[str, Any] = field(default_factory=dict)


# Buffers of the StyleGAN2 generator (by last name component); everything else is a parameter.
BUFFER_NAMES = ("w_avg", "noise_const", "resample_filter")


def _listed(names: list[str], limit: int = 4) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def check_state(
    expected: Mapping[str, torch.Size | tuple[int, ...]],
    found: Mapping[str, torch.Tensor],
    source: str,
) -> None:
    """Raise ``CheckpointError`` unless ``found`` has exactly ``expected``'s names and shapes."""
    missing = sorted(set(expected) - set(found))
    extra = sorted(set(found) - set(expected))
    if missing:
        raise CheckpointError(
            f"{source}: {len(missing)} tensor(s) the generator needs are missing: "
            f"{_listed(missing)}; the file is incomplete or not a StyleGAN2 generator"
        )
    if extra:
        raise CheckpointError(
            f"{source}: {len(extra)} unexpected tensor(s): {_listed(extra)}; the file holds a "
            "different network than its configuration describes"
        )
    for name, shape in expected.items():
        got = tuple(found[name].shape)
        if got != tuple(shape):
            raise CheckpointError(
                f"{source}: tensor {name} has shape {list(got)}, the configuration needs "
                f"{list(shape)}; the file's weights do not match its configuration"
            )
        if not (found[name].is_floating_point()):
            raise CheckpointError(
                f"{source}: tensor {name} has dtype {found[name].dtype}, expected floating point"
            )


def channels_config(
    img_resolution: int, state: Mapping[str, torch.Tensor], channel_base: int, channel_max: int
) -> tuple[int, int]:
    """(channel_base, channel_max) that reproduce the blocks' channel counts in ``state``.

    The given values are kept when they fit (or when the blocks' weights are absent: the
    name check reports that); otherwise they are inferred from the conv1 weight shapes,
    since ``min(channel_base // res, channel_max)`` is all that the two numbers decide.
    """
    resolutions = [2**i for i in range(2, img_resolution.bit_length())]
    names = [f"synthesis.b{r}.conv1.weight" for r in resolutions]
    if not all(n in state and state[n].dim() == 4 for n in names):
        return channel_base, channel_max
    found = {r: int(state[n].shape[0]) for r, n in zip(resolutions, names, strict=True)}

    def fits(base: int, cmax: int) -> bool:
        return all(min(base // r, cmax) == c for r, c in found.items())

    if fits(channel_base, channel_max):
        return channel_base, channel_max
    cmax = max(found.values())
    below = [r for r, c in found.items() if c < cmax]
    base = found[max(below)] * max(below) if below else cmax * img_resolution
    return (base, cmax) if fits(base, cmax) else (channel_base, channel_max)


def build_generator(
    config: GeneratorConfig, state: Mapping[str, torch.Tensor], source: str
) -> Generator:
    """A ``Generator(config)`` holding ``state`` (checked by name and shape), in eval mode,
    on the CPU, with ``requires_grad`` False on every parameter (like NVIDIA's ``G_ema``)."""
    try:
        G = Generator(config)
    except (ValueError, TypeError) as exc:
        raise CheckpointError(f"{source}: unusable generator configuration: {exc}") from None
    own = G.state_dict()
    check_state({name: tensor.shape for name, tensor in own.items()}, state, source)
    for name, tensor in own.items():
        # Resampling filters follow from the config; a different one means a wrong config.
        if name.endswith("resample_filter") and not torch.equal(tensor, state[name].float()):
            raise CheckpointError(
                f"{source}: {name} differs from the filter {list(config.resample_filter)} "
                "the configuration names; the file's settings are inconsistent"
            )
    with torch.no_grad():
        for name, tensor in own.items():
            tensor.copy_(state[name])
    return G.eval().requires_grad_(False)


def parameter_count(state: Mapping[str, torch.Tensor]) -> int:
    """Number of trainable values (parameters, not buffers) in a generator state dict."""
    return sum(
        t.numel() for name, t in state.items() if name.rsplit(".", 1)[-1] not in BUFFER_NAMES
    )
