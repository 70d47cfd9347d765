"""What every stage shares: the run context and the cached-or-computed wrapper.

A stage module builds its ``KeyMaterial`` (``material``), and computes its result into a
``Pending`` directory (``compute``); ``run_cached`` looks the key up in the store first and
only computes on a miss (or when the stage is forced).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from pipeline.progress import Display
from pipeline.store import KeyMaterial, Pending, Result, Store


@dataclass
class StageContext:
    """Shared by the stages of one run."""

    store: Store
    display: Display
    device: torch.device
    generator_path: Path
    force: frozenset[str] = frozenset()  # stages to recompute even when cached
    checkpoint_every: int = 25  # loop steps between checkpoints
    _base: Any = None
    _generator_digest: str | None = None
    _tuned: dict[str, Any] = field(default_factory=dict)

    @property
    def generator_digest(self) -> str:
        if self._generator_digest is None:
            from pipeline.stages.generator import checkpoint_digest

            self._generator_digest = checkpoint_digest(self.store, self.generator_path)
        return self._generator_digest


@dataclass
class Outcome:
    """A stage result and how it was obtained."""

    result: Result
    computed: bool  # False: served from the store
    seconds: float  # time spent computing (0 when cached)
    material: KeyMaterial

    @property
    def key(self) -> str:
        return self.result.key


def run_cached(
    ctx: StageContext,
    material: KeyMaterial,
    compute: Callable[[Pending], tuple[dict[str, Any], dict[str, Any]]],
) -> Outcome:
    """The stored result for ``material``, computing it with ``compute(pending)`` on a miss.

    ``compute`` writes its files into the pending directory and returns (metrics, info).
    """
    forced = material.stage in ctx.force
    if not forced:
        found = ctx.store.lookup(material)
        if found is not None:
            return Outcome(found, computed=False, seconds=0.0, material=material)
    pending = ctx.store.begin(material)
    if forced:  # recompute from scratch: drop any checkpoints of an earlier attempt
        pending.discard()
        pending = ctx.store.begin(material)
    start = time.perf_counter()
    metrics, info = compute(pending)
    seconds = time.perf_counter() - start
    result = pending.commit(metrics=metrics, timings={"seconds": round(seconds, 3)}, info=info)
    return Outcome(result, computed=True, seconds=seconds, material=material)


# Image helpers shared by the stages ------------------------------------------------------
def image_to_tensor(image: np.ndarray) -> torch.Tensor:
    """[H, W, 3] uint8 -> [1, 3, H, W] float32 in [-1, 1]."""
    arr = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float()
    return (arr / 127.5 - 1.0).unsqueeze(0)


def tensor_to_image(tensor: torch.Tensor) -> np.ndarray:
    """[1, 3, H, W] (or [3, H, W]) in about [-1, 1] -> [H, W, 3] uint8 (NVIDIA's rounding)."""
    t = tensor.detach().float().cpu()
    if t.dim() == 4:
        t = t[0]
    t = (t * 127.5 + 128).clamp(0, 255).to(torch.uint8)
    return t.permute(1, 2, 0).numpy()


def save_png(path: Path, image: np.ndarray) -> None:
    """Write an [H, W, 3] uint8 image as PNG (deterministic bytes: no metadata)."""
    Image.fromarray(image).save(path, format="PNG", optimize=False)


def load_png(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB")).copy()
