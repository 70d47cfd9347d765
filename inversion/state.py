"""Resumable state of the two PTI loops (``ProjectState``, ``TuneState``) and fused Adam.

Both follow the loop protocol of ``draggan.loop_state``: after each step the callback gets
a ``Progress`` (``draggan.loop_state.LoopProgress``; ``phase`` 'project' or 'tune') whose
``state()`` snapshots the loop during the call; ``to_tensors()`` / ``from_tensors`` store it
as safetensors + JSON; ``resume=`` continues bit-identically (same device, torch build and
thread count; with several CPU threads, oneDNN can reduce in a varying order on tiny feature
maps, e.g. AlexNet's 1x1 maps for 32 px images, so tests run on one thread). A state holds
the step count, the variables being optimised, Adam's moments, the random generator's state
and digests of the inputs, so it cannot be resumed against another target, pivot, generator
or config (``ResumeMismatch``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch

from draggan.loop_state import LoopProgress, LoopState, tensor_field, tensors_field
from inversion.errors import InversionError, ResumeMismatch

Progress = LoopProgress  # what the projection and tuning callbacks receive


def make_adam(
    params: Iterable[torch.Tensor], lr: float, betas: tuple[float, float] = (0.9, 0.999)
) -> torch.optim.Adam:
    """Adam, with torch's fused kernel on CPU and CUDA.

    The same update rule as the default (foreach) loop, several times faster for a whole
    generator (one pass over all parameters). A different kernel: it may round an update
    differently, so parameters can differ from the default loop's by one unit in the last
    place per step (tested bound); a run resumed with it repeats its own values exactly.
    """
    params = list(params)
    fused = all(p.device.type in ("cpu", "cuda") and p.dtype == torch.float32 for p in params)
    return torch.optim.Adam(params, lr=lr, betas=betas, fused=fused or None)


@dataclass
class _InversionState(LoopState):
    ERROR: ClassVar[type[Exception]] = InversionError
    MISMATCH: ClassVar[type[Exception]] = ResumeMismatch
    DIGEST_WORDS: ClassVar[dict[str, str]] = {
        "config": "config",
        "target_digest": "target",
        "pivot_digest": "pivot",
        "generator_digest": "generator",
    }


@dataclass
class ProjectState(_InversionState):
    """The projection loop after ``step`` completed steps."""

    KIND: ClassVar[str] = "inversion.project"

    w_opt: torch.Tensor = tensor_field()  # [1, 1, w_dim] (W) or [1, num_ws, w_dim] (W+)
    noise: dict[str, torch.Tensor] = tensors_field()  # noise buffer name -> [H, W]
    optimizer: dict[str, torch.Tensor] = tensors_field()  # Adam, see ``adam_tensors``
    rng: torch.Tensor = tensor_field()  # torch.Generator state, uint8
    w_std: float = 0.0
    config: dict[str, Any] = field(default_factory=dict)  # ProjectConfig.to_dict()
    target_digest: str = ""
    generator_digest: str = ""


@dataclass
class TuneState(_InversionState):
    """The pivotal-tuning loop after ``step`` completed steps."""

    KIND: ClassVar[str] = "inversion.tune"

    params: dict[str, torch.Tensor] = tensors_field()  # tuned parameter name -> tensor
    optimizer: dict[str, torch.Tensor] = tensors_field()  # Adam, see ``adam_tensors``
    rng: torch.Tensor = tensor_field()  # torch.Generator state, uint8
    config: dict[str, Any] = field(default_factory=dict)  # TuneConfig.to_dict()
    target_digest: str = ""
    pivot_digest: str = ""
    generator_digest: str = ""  # of the generator passed in (not the tuned one)
