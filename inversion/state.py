"""Resumable state of the two optimisation loops, and the progress record callbacks receive.

A state is a snapshot taken after a completed step: everything the loop needs to continue
and give bit-identical results (same device, torch build and thread count; with several CPU
threads, oneDNN can reduce in a varying order on tiny feature maps, e.g. AlexNet's 1x1 maps
for 32 px images, so tests run on one thread): step count, the variables
being optimised, Adam's moments, the random generator's state, plus digests of the inputs
so a state cannot be resumed against another target, pivot, generator or config.

``to_tensors()`` returns ``(tensors, meta)``: a flat ``dict[str, Tensor]`` (contiguous CPU
tensors, ready for ``safetensors.torch.save_file``) and a JSON-ready ``dict``;
``from_tensors(tensors, meta)`` is the inverse.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

import torch

from inversion.errors import InversionError, ResumeMismatch

STATE_VERSION = 1


def _snapshot(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.detach().to("cpu", copy=True).contiguous()


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


def optimizer_tensors(optimizer: torch.optim.Optimizer) -> dict[str, torch.Tensor]:
    """Adam's per-parameter state as ``{'<param index>.<key>': tensor}`` (CPU copies)."""
    params = [p for group in optimizer.param_groups for p in group["params"]]
    out = {}
    for index, param in enumerate(params):
        for key, value in optimizer.state.get(param, {}).items():
            out[f"{index}.{key}"] = _snapshot(torch.as_tensor(value))
    return out


def load_optimizer_tensors(
    optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor]
) -> None:
    """Restore what ``optimizer_tensors`` saved into a freshly built optimiser."""
    num_params = sum(len(group["params"]) for group in optimizer.param_groups)
    state: dict[int, dict[str, torch.Tensor]] = {}
    for name, value in tensors.items():
        index_text, _, key = name.partition(".")
        index = int(index_text)
        if not 0 <= index < num_params:
            raise ResumeMismatch(
                f"resume state has optimiser entry {name!r} for parameter {index}, "
                f"but this run optimises {num_params} tensors: start the run afresh"
            )
        state.setdefault(index, {})[key] = value.clone()
    full = optimizer.state_dict()
    full["state"] = state
    optimizer.load_state_dict(full)


def _split(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}


def _require(tensors: dict[str, torch.Tensor], name: str, kind: str) -> torch.Tensor:
    if name not in tensors:
        raise InversionError(f"{kind} resume state is incomplete: tensor {name!r} is missing")
    return tensors[name]


def _check_meta(meta: dict[str, Any], kind: str) -> None:
    if meta.get("kind") != kind:
        raise InversionError(f"resume state is a {meta.get('kind')!r} state, expected {kind!r}")
    if meta.get("version") != STATE_VERSION:
        raise InversionError(
            f"{kind} resume state has version {meta.get('version')!r}, this dragpipe reads "
            f"version {STATE_VERSION}: start the run afresh"
        )


def _tensor() -> Any:
    return field(metadata={"store": "tensor"})


def _tensor_dict() -> Any:
    return field(metadata={"store": "tensors"})


@dataclass
class _StateBase:
    """Serialisation and digest checks shared by both states.

    Fields marked ``_tensor()`` are stored as one tensor under their name, ``_tensor_dict()``
    fields as one tensor per entry under ``'<field>.<key>'``; all other fields go to meta.
    """

    KIND: ClassVar[str] = ""

    def to_tensors(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """``(tensors, meta)``: flat contiguous CPU tensors and JSON-ready metadata."""
        tensors: dict[str, torch.Tensor] = {}
        meta: dict[str, Any] = {"kind": self.KIND, "version": STATE_VERSION}
        for f in fields(self):
            value = getattr(self, f.name)
            store = f.metadata.get("store")
            if store == "tensor":
                tensors[f.name] = _snapshot(value)
            elif store == "tensors":
                tensors.update({f"{f.name}.{k}": _snapshot(v) for k, v in value.items()})
            else:
                meta[f.name] = value
        return tensors, meta

    @classmethod
    def from_tensors(cls, tensors: dict[str, torch.Tensor], meta: dict[str, Any]):
        """Inverse of ``to_tensors``."""
        _check_meta(meta, cls.KIND)
        values: dict[str, Any] = {}
        for f in fields(cls):
            store = f.metadata.get("store")
            if store == "tensor":
                values[f.name] = _require(tensors, f.name, cls.KIND)
            elif store == "tensors":
                values[f.name] = _split(tensors, f.name + ".")
            elif f.name not in meta:
                raise InversionError(f"{cls.KIND} resume state is incomplete: no {f.name!r}")
            else:
                values[f.name] = meta[f.name]
        return cls(**values)

    def check_matches(self, **expected: Any) -> None:
        """Raise ``ResumeMismatch`` naming the first field that differs from ``expected``."""
        for name, value in expected.items():
            if getattr(self, name) != value:
                raise ResumeMismatch(
                    f"{self.KIND} resume state does not match this run: its {name} differs "
                    "(other config, target, pivot or generator): start the run afresh"
                )


@dataclass
class ProjectState(_StateBase):
    """The projection loop after ``step`` completed steps."""

    KIND: ClassVar[str] = "inversion.project"

    step: int
    w_opt: torch.Tensor = _tensor()  # [1, 1, w_dim] (W) or [1, num_ws, w_dim] (W+)
    noise: dict[str, torch.Tensor] = _tensor_dict()  # noise buffer name -> [H, W]
    optimizer: dict[str, torch.Tensor] = _tensor_dict()  # Adam, see ``optimizer_tensors``
    rng: torch.Tensor = _tensor()  # torch.Generator state, uint8
    w_std: float = 0.0
    config: dict[str, Any] = field(default_factory=dict)  # ProjectConfig.to_dict()
    target_digest: str = ""
    generator_digest: str = ""


@dataclass
class TuneState(_StateBase):
    """The pivotal-tuning loop after ``step`` completed steps."""

    KIND: ClassVar[str] = "inversion.tune"

    step: int
    params: dict[str, torch.Tensor] = _tensor_dict()  # tuned parameter name -> tensor
    optimizer: dict[str, torch.Tensor] = _tensor_dict()  # Adam, see ``optimizer_tensors``
    rng: torch.Tensor = _tensor()  # torch.Generator state, uint8
    config: dict[str, Any] = field(default_factory=dict)  # TuneConfig.to_dict()
    target_digest: str = ""
    pivot_digest: str = ""
    generator_digest: str = ""  # of the generator passed in (not the tuned one)


@dataclass(frozen=True)
class Progress:
    """What a loop reports after each completed optimiser step.

    ``state()`` snapshots the loop's complete resumable state (copies: the loop goes on).
    A callback may stop the run by raising any exception; the exception propagates out of
    ``project`` / ``tune`` unchanged, and the last snapshot taken can be passed as
    ``resume=`` to continue exactly where it was.
    """

    phase: str  # 'project' | 'tune'
    step: int  # optimiser steps completed, 1..num_steps
    num_steps: int  # the loop's step budget (tuning may stop earlier)
    losses: dict[str, float]  # the losses of the step just taken
    state: Callable[[], ProjectState | TuneState] = field(repr=False)
