"""A cluster worker's stage context (``pipeline.cluster.worker``), without Ray: the
driver's ``DRAGPIPE_AUTOTUNE`` applies to the generator a worker loads (a worker process
outlives a run on a long-lived cluster: a run whose driver sets none gets the node's own
setting back), and the generator's warnings reach the job running at the time, not the one
that opened the context."""

from __future__ import annotations

import io
import os
from pathlib import Path

import torch

from draggan.autotune import ENV_VAR
from pipeline.cluster import worker
from pipeline.cluster.worker import WorkerSetup
from pipeline.progress import Display
from pipeline.stages.generators import checkpoint_digest
from pipeline.store import Store

GENERATOR = Path(__file__).resolve().parent.parent / "examples" / "demo" / "generator.safetensors"


def _display() -> tuple[Display, list[str]]:
    said: list[str] = []
    display = Display(0, stream=io.StringIO(), tty=False)
    display.warn = said.append  # type: ignore[method-assign]
    return display, said


def test_the_worker_context_takes_the_drivers_autotune_and_warns_the_current_job(
    tmp_path, monkeypatch
):
    monkeypatch.setattr(worker, "_CONTEXTS", {})
    monkeypatch.setattr(worker, "_NODE_AUTOTUNE", "off")  # as the node was started
    monkeypatch.setenv(ENV_VAR, "off")
    digest = checkpoint_digest(Store(tmp_path / "work"), GENERATOR)
    setup = WorkerSetup(
        workdir=tmp_path / "work",
        generator=GENERATOR,
        generator_digest=digest,
        device="cpu",
        threads=1,
        checkpoint_every=2,
        run="run-token",
        autotune="modulated_conv=unfused-contiguous",
    )
    first, first_said = _display()
    ctx = worker._context(setup, torch.device("cpu"), first)
    tuner = ctx.generators.base().synthesis.autotuner
    assert os.environ[ENV_VAR] == "modulated_conv=unfused-contiguous"
    assert tuner.override == {"modulated_conv": "unfused-contiguous"}

    second, second_said = _display()
    assert worker._context(setup, torch.device("cpu"), second) is ctx  # the next job
    tuner.on_warning("autotune cache /x unreadable; measuring again")
    assert second_said == ["autotune cache /x unreadable; measuring again"] and not first_said

    # a later run whose driver has no DRAGPIPE_AUTOTUNE: the node's own setting
    third, _ = _display()
    plain = worker._context(
        WorkerSetup(**{**setup.__dict__, "autotune": None}), torch.device("cpu"), third
    )
    assert plain is not ctx and os.environ[ENV_VAR] == "off"
    assert plain.generators.base().synthesis.autotuner.override == "off"
