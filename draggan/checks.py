"""Readable shape checks at the generator's public boundary."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from draggan.errors import DragganError


class GeneratorInputError(DragganError, ValueError):
    """A tensor or argument given to the generator has the wrong shape or value."""


def check_shape(
    tensor: torch.Tensor | None, name: str, expected: Sequence[int | str | None]
) -> None:
    """Raise ``GeneratorInputError`` unless ``tensor`` matches ``expected``.

    ``expected`` holds ints (exact sizes) and strings or None (free sizes, shown by name),
    e.g. ``check_shape(ws, "ws", ["N", 14, 512])``.
    """
    want = "[" + ", ".join("?" if e is None else str(e) for e in expected) + "]"
    if not isinstance(tensor, torch.Tensor):
        raise GeneratorInputError(f"expected {name} tensor {want}, got {type(tensor).__name__}")
    got = list(tensor.shape)
    ok = len(got) == len(expected) and all(
        not isinstance(e, int) or g == e for g, e in zip(got, expected, strict=True)
    )
    if not ok:
        shown = [g if isinstance(e, int) else (e or g) for g, e in zip(got, expected, strict=False)]
        if len(got) != len(expected):
            shown = got
        raise GeneratorInputError(
            f"expected {name} {want}, got {name} [{', '.join(str(s) for s in shown)}]"
        )


def check_choice(value: str, name: str, choices: Sequence[str]) -> None:
    """Raise ``GeneratorInputError`` unless ``value`` is one of ``choices``."""
    if value not in choices:
        raise GeneratorInputError(f"{name} must be one of {list(choices)}, got {value!r}")
