"""A Ray worker setup hook for tests/test_cluster_ray.py (not a test module).

``install`` runs in every worker process of the test cluster (``worker_process_setup_hook``).
When the file named by ``$DRAGPIPE_TEST_PAUSE`` holds an order ``{"label": "mirror tune",
"step": 4, "marker": PATH}``, the worker that reaches that step of that loop (right after
the loop saved its checkpoint there) writes its pid to PATH and sleeps: a job held in the
middle of tuning at a known step, for the test to kill by pid or to interrupt. Only the
first worker to get there pauses (PATH is created exclusively), so a retried job runs on.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

PAUSE_ENV = "DRAGPIPE_TEST_PAUSE"


def install() -> None:
    order_file = os.environ.get(PAUSE_ENV)
    if not order_file:
        return
    from pipeline.stages import invert

    original = invert._checkpointing

    def pausing(pending, name, every, bar, total):
        callback = original(pending, name, every, bar, total)

        def wrapped(progress) -> None:
            callback(progress)
            _maybe_pause(Path(order_file), bar.label, progress.step)

        return wrapped

    invert._checkpointing = pausing


def _maybe_pause(order_file: Path, label: str, step: int) -> None:
    try:
        order = json.loads(order_file.read_text())
    except (OSError, ValueError):
        return
    if order.get("label") != label or order.get("step") != step:
        return
    try:
        fd = os.open(order["marker"], os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        return  # an earlier attempt paused here already
    os.write(fd, str(os.getpid()).encode())
    os.close(fd)
    # Short sleeps, as a computing loop runs Python between kernels: Ray's cancellation
    # (an exception raised asynchronously in this thread) lands between two of them.
    deadline = time.monotonic() + float(order.get("seconds", 120))
    while time.monotonic() < deadline:
        time.sleep(0.05)
