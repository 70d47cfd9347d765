"""One protocol for the resumable optimisation loops: W projection and pivotal tuning
(``inversion``) and the drag (``draggan.dragging``).

The callback. After every step a loop calls ``callback(progress)`` with a ``LoopProgress``
(the drag's ``DragProgress`` adds the step record and the image). ``progress.state()``
snapshots the loop as a ``LoopState``; it works only during that call (afterwards the loop
has moved on and a snapshot would mix two steps). A callback stops a loop by raising: the
exception propagates unchanged. The drag also ends when its callback returns True.

The state. A ``LoopState`` is a dataclass whose fields say how they are stored:
``tensor_field()`` (one tensor under the field's name), ``tensors_field()`` (a dict of
tensors, one per key under ``'<field>.<key>'``); every other field goes to the JSON meta,
through ``meta_field(encode, decode)`` when it is not plain JSON. ``to_tensors()`` ->
``(tensors, meta)``: contiguous CPU tensors ready for ``safetensors.torch.save_file`` and a
JSON-ready dict; ``from_tensors(tensors, meta)`` is the inverse and raises the state's
``ERROR`` (one line) for another kind, another version, or missing or damaged entries.
Passing the state back as ``resume=`` continues the loop exactly where it was: the same
bits as an uninterrupted run on the same device, torch build and thread count. The state
carries digests of its run's inputs; ``check_matches`` raises the state's ``MISMATCH`` for a
state of another run.

Adam's moments are saved and restored by ``adam_tensors`` / ``load_adam``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, TypeVar

import torch

S = TypeVar("S")
L = TypeVar("L", bound="LoopState")


def snapshot_tensor(tensor: torch.Tensor) -> torch.Tensor:
    """A contiguous CPU copy, detached from the loop."""
    return tensor.detach().to("cpu", copy=True).contiguous()


def tensor_field() -> Any:
    """A field stored as one tensor under its name."""
    return field(metadata={"store": "tensor"})


def tensors_field() -> Any:
    """A ``dict[str, Tensor]`` field stored as one tensor per key, ``'<field>.<key>'``."""
    return field(metadata={"store": "tensors"})


def meta_field(
    encode: Callable[[Any], Any], decode: Callable[[Any], Any], default: Any = None
) -> Any:
    """A meta field stored as ``encode(value)`` and read back with ``decode``."""
    metadata = {"encode": encode, "decode": decode}
    if default is None:
        return field(metadata=metadata)
    return field(default_factory=default, metadata=metadata)


def integer(value: Any) -> int:
    """``value`` when it is an int (not a bool), else ValueError (a damaged state)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"expected an integer, got {value!r}")
    return value


@dataclass
class LoopState:
    """A loop's resumable state after ``step`` steps (see the module docstring).

    Subclasses set ``KIND`` (e.g. 'draggan.drag'), ``VERSION`` (bumped when the layout
    changes), ``ERROR`` (raised for unreadable states), ``MISMATCH`` (raised for a state of
    another run: a subclass of ``ERROR``) and ``DIGEST_WORDS`` (field name -> what it
    stands for, in ``check_matches``'s message).
    """

    KIND: ClassVar[str] = ""
    VERSION: ClassVar[int] = 1
    ERROR: ClassVar[type[Exception]] = ValueError
    MISMATCH: ClassVar[type[Exception]] = ValueError
    DIGEST_WORDS: ClassVar[dict[str, str]] = {}

    step: int = meta_field(lambda v: v, integer)

    def to_tensors(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """``(tensors, meta)``: flat contiguous CPU tensors and JSON-ready metadata."""
        tensors: dict[str, torch.Tensor] = {}
        meta: dict[str, Any] = {"kind": self.KIND, "version": self.VERSION}
        for f in fields(self):
            value = getattr(self, f.name)
            store = f.metadata.get("store")
            if store == "tensor":
                tensors[f.name] = snapshot_tensor(value)
            elif store == "tensors":
                tensors.update({f"{f.name}.{k}": snapshot_tensor(v) for k, v in value.items()})
            else:
                encode = f.metadata.get("encode")
                meta[f.name] = encode(value) if encode else value
        return tensors, meta

    @classmethod
    def from_tensors(cls: type[L], tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> L:
        """Inverse of ``to_tensors``; ``ERROR`` for anything else."""
        kind = meta.get("kind") if isinstance(meta, dict) else type(meta).__name__
        if kind != cls.KIND:
            raise cls.ERROR(f"resume state: expected a {cls.KIND!r} state, got {kind!r}")
        if meta.get("version") != cls.VERSION:
            raise cls.ERROR(
                f"{cls.KIND} resume state has version {meta.get('version')!r}, this dragpipe "
                f"reads version {cls.VERSION}: start afresh"
            )
        values: dict[str, Any] = {}
        for f in fields(cls):
            store = f.metadata.get("store")
            if store == "tensor":
                if f.name not in tensors:
                    raise cls.ERROR(
                        f"{cls.KIND} resume state is incomplete: tensor {f.name!r} is missing"
                    )
                values[f.name] = tensors[f.name]
            elif store == "tensors":
                prefix = f.name + "."
                values[f.name] = {
                    k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)
                }
        try:
            for f in fields(cls):
                if f.metadata.get("store") is None:
                    decode = f.metadata.get("decode")
                    values[f.name] = decode(meta[f.name]) if decode else meta[f.name]
        except (KeyError, TypeError, ValueError) as exc:
            raise cls.ERROR(
                f"{cls.KIND} resume state is damaged ({type(exc).__name__}: {exc}): start afresh"
            ) from None
        return cls(**values)

    def check_matches(self, **expected: Any) -> None:
        """``MISMATCH`` naming the first field that differs from ``expected`` (the digests
        and config of the run asked to resume)."""
        for name, value in expected.items():
            if getattr(self, name) != value:
                words = self.DIGEST_WORDS.get(name, name)
                raise self.MISMATCH(
                    f"{self.KIND} resume state (step {self.step}) belongs to another run: its "
                    f"{words} differs from this run's; start afresh"
                )


@dataclass(frozen=True)
class LoopProgress:
    """What a loop hands its callback after each step (see the module docstring)."""

    phase: str  # 'project' | 'tune' | 'drag'
    step: int  # the step just reported (projection, tuning: steps done, 1..num_steps)
    num_steps: int  # the loop's step budget (it may stop earlier)
    losses: dict[str, float]  # the losses of that step
    state: Callable[[], LoopState] = field(repr=False)  # valid only during the callback


@contextmanager
def offered(snapshot: Callable[[], S], error: type[Exception]) -> Iterator[Callable[[], S]]:
    """A ``state()`` for one callback: ``snapshot()`` while the ``with`` block runs, then
    ``error`` (the loop has moved on)."""
    live = [True]

    def state() -> S:
        if not live[0]:
            raise error("state() can only be called during the callback that received it")
        return snapshot()

    try:
        yield state
    finally:
        live[0] = False


def adam_tensors(optimizer: torch.optim.Optimizer) -> dict[str, torch.Tensor]:
    """Adam's per-parameter state as ``{'<param index>.<key>': tensor}`` (CPU copies; empty
    before the first step)."""
    params = [p for group in optimizer.param_groups for p in group["params"]]
    out = {}
    for index, param in enumerate(params):
        for key, value in optimizer.state.get(param, {}).items():
            out[f"{index}.{key}"] = snapshot_tensor(torch.as_tensor(value))
    return out


def load_adam(
    optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], error: type[Exception]
) -> None:
    """Restore what ``adam_tensors`` saved into a freshly built optimiser; ``error`` when the
    saved state names a parameter this optimiser does not have."""
    num_params = sum(len(group["params"]) for group in optimizer.param_groups)
    state: dict[int, dict[str, torch.Tensor]] = {}
    for name, value in tensors.items():
        index_text, _, key = name.partition(".")
        index = int(index_text) if index_text.isdigit() else -1
        if not 0 <= index < num_params or not key:
            raise error(
                f"resume state has optimiser entry {name!r}, but this run optimises "
                f"{num_params} tensor(s): start afresh"
            )
        state.setdefault(index, {})[key] = value.clone()
    if not state:
        return
    full = optimizer.state_dict()
    full["state"] = state
    optimizer.load_state_dict(full)
