"""What ``drag`` needs to snapshot and restore its loop: the run's digests, Adam's state, and
the ``state`` callable handed to callbacks that ask for it."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import torch

from draggan.digests import module_digest, tensor_digest
from draggan.dragging.config import DragConfig
from draggan.dragging.errors import DragResumeError
from draggan.dragging.inputs import DragInputs
from draggan.dragging.state import DragState


class RunDigests:
    """The digests that tie a ``DragState`` to one drag (computed on first use: hashing a
    large generator's weights costs a fraction of a second, paid only when resuming or
    snapshotting)."""

    def __init__(self, G: torch.nn.Module, inputs: DragInputs, config: DragConfig) -> None:
        self.config = config.to_dict()
        self._G = G
        self._inputs = inputs
        self._digests: dict[str, str] = {}

    @property
    def inputs(self) -> str:
        if "inputs" not in self._digests:
            parts = [self._inputs.ws, self._inputs.handles, self._inputs.targets]
            if self._inputs.fixed is not None:
                parts.append(self._inputs.fixed)
            self._digests["inputs"] = tensor_digest(parts)
        return self._digests["inputs"]

    @property
    def generator(self) -> str:
        if "generator" not in self._digests:
            self._digests["generator"] = module_digest(self._G)
        return self._digests["generator"]

    def check(self, state: DragState) -> None:
        state.check_matches(self.config, self.inputs, self.generator)


def adam_tensors(optimizer: torch.optim.Adam, param: torch.Tensor) -> dict[str, torch.Tensor]:
    """Adam's state for ``param`` ('step', 'exp_avg', 'exp_avg_sq'; CPU copies; empty before
    the first update)."""
    return {
        key: torch.as_tensor(value).detach().to("cpu", copy=True)
        for key, value in optimizer.state.get(param, {}).items()
    }


def load_adam(optimizer: torch.optim.Adam, tensors: dict[str, torch.Tensor]) -> None:
    """Restore what ``adam_tensors`` saved into a fresh one-parameter Adam."""
    if not tensors:
        return
    full = optimizer.state_dict()
    full["state"] = {0: {key: value.clone() for key, value in tensors.items()}}
    optimizer.load_state_dict(full)


def accepts_state(callback: Callable[..., Any]) -> bool:
    """Whether ``callback`` takes a ``state`` keyword (or ``**kwargs``)."""
    try:
        parameters = inspect.signature(callback).parameters.values()
    except (TypeError, ValueError):
        return False
    keyword = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return any(
        p.kind == inspect.Parameter.VAR_KEYWORD or (p.name == "state" and p.kind in keyword)
        for p in parameters
    )


def call_with_state(
    callback: Callable[..., Any],
    record: Any,
    image: torch.Tensor | None,
    snapshot: Callable[[], DragState],
) -> Any:
    """``callback(record, image, state=...)``, where ``state()`` works only during the call
    (afterwards the loop has moved on and a snapshot would mix two steps)."""
    live = True

    def state() -> DragState:
        if not live:
            raise DragResumeError(
                "drag: state() can only be called during the callback that received it"
            )
        return snapshot()

    try:
        return callback(record, image, state=state)
    finally:
        live = False
