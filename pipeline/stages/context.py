"""``StageContext``: what a job's compute function needs besides its task.

The store, where messages go, the device, the generators, how often long loops save
their state, which run the work is for (the run lock's token: a job's lease names it, so a
retried job knows whether the checkpoints it finds are its own run's) and optionally a
``watch`` on drags (``dragpipe edit`` streams the frames and stops a drag through it).
``StageContext.open`` builds one from plain values, so a process that only received a
``Job`` (a worker) can compute it against the same workdir.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pipeline.progress import Display
from pipeline.stages.generators import Generators
from pipeline.store import Store

# watch(label, record, frame) after every drag step: ``record`` the step's ``DragStep``,
# ``frame`` its image [R, R, 3] uint8 when the step rendered one. True asks the drag to stop
# there (the edit stage then raises ``DragStopped``, see ``pipeline.stages.edit``).
DragWatch = Callable[[str, Any, "np.ndarray | None"], bool]


@dataclass
class StageContext:
    """Shared by the jobs computed in one process."""

    store: Store
    display: Display
    device: torch.device
    generators: Generators
    checkpoint_every: int = 25  # loop steps between checkpoints
    run: str | None = None  # the run's id (its workdir lock token)
    watch: DragWatch | None = None  # sees every drag step; may stop the drag

    @classmethod
    def open(
        cls,
        workdir: Path,
        generator: Path,
        device: torch.device,
        display: Display,
        checkpoint_every: int = 25,
        run: str | None = None,
        read_only: bool = False,
    ) -> StageContext:
        """A context on the store in ``workdir`` for the checkpoint ``generator``
        (``read_only``: a store that writes nothing, for ``status`` and dry runs)."""
        store = Store(workdir, report=display.warn, read_only=read_only)
        generators = Generators(store, generator, device, display.warn)
        return cls(store, display, device, generators, checkpoint_every, run)
