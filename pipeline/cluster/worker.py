"""What a cluster worker does with a job: ``run_on_worker``, the body of the Ray task.

It needs no ``ray`` import of its own (the driver wraps it with ``ray.remote``) and works
on plain values:

1. checks that this node runs the driver's dragpipe version and sees the driver's workdir:
   the workdir's run lock must hold the token of the run that sent the job (the same
   shared storage at the same path, and the run still holds it);
2. opens (once per worker process) a ``StageContext`` on that workdir: the base generator
   stays loaded between jobs; its file must have the digest the driver computed; the
   driver's ``DRAGPIPE_AUTOTUNE`` (when it has one) applies to the generator it loads, and
   the generator's warnings go to the current job's display;
3. waits until the results the job reads are visible (a network filesystem may cache a
   directory listing for a while) and computes the job with ``run_announced``: cached or
   computed under the result's lease, resumed from the checkpoints a killed attempt left;
4. returns a ``WorkerReply``: the ``Outcome``, or a ``JobFailure`` for an error of the job's
   own (a bad photo), which Ray must not retry. A dead worker process is Ray's to retry;
   a cancellation (``KeyboardInterrupt`` from ``ray.cancel``) propagates.

Threads: the job runs with ``threads`` torch threads (its reserved CPUs). Device: an
inversion or drag job with GPUs reserved runs on CUDA (Ray sets ``CUDA_VISIBLE_DEVICES``);
every other job on the CPU.
"""

from __future__ import annotations

import os
import pickle
import secrets
import socket
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from draggan.autotune import ENV_VAR as AUTOTUNE_ENV
from draggan.version import __version__
from pipeline.cluster.events import Event, RemoteDisplay
from pipeline.errors import PipelineError
from pipeline.execute import Outcome
from pipeline.jobs import Job
from pipeline.runner import resolve_device, run_announced
from pipeline.stages.context import StageContext
from pipeline.store import run_holder


@dataclass(frozen=True)
class WorkerSetup:
    """What every job of a run needs besides the job itself (plain, picklable values)."""

    workdir: Path
    generator: Path  # the spec's checkpoint file
    generator_digest: str  # its SHA-256 as the driver read it
    device: str  # --device: 'auto', 'cpu', 'cuda' or 'mps'
    threads: int  # torch threads per job
    checkpoint_every: int
    run: str  # the run lock's token
    version: str = __version__  # the driver's dragpipe version
    autotune: str | None = None  # the driver's $DRAGPIPE_AUTOTUNE (None: the node's own)


@dataclass(frozen=True)
class Placement:
    """Where and when a job ran (wall clock of its node)."""

    host: str
    pid: int
    started: float  # the task started
    ended: float  # the task returned
    computing: float  # seconds of these spent in the stage's compute (0: cached or failed)


@dataclass(frozen=True)
class JobFailure:
    """A job's own error, for the driver to report as the local runner does."""

    error: Exception | None  # the exception itself when it survives pickling
    kind: str  # its type name
    message: str
    traceback: str

    def exception(self) -> Exception:
        """The error to report (a ``RemoteJobError`` when the original did not pickle)."""
        return self.error if self.error is not None else RemoteJobError(self.kind, self.message)


class RemoteJobError(Exception):
    """An error raised on a worker that could not be sent back as itself."""

    def __init__(self, kind: str, message: str):
        super().__init__(f"{kind}: {message}")
        self.kind = kind


@dataclass(frozen=True)
class WorkerReply:
    outcome: Outcome | None
    failure: JobFailure | None
    placement: Placement


_CONTEXTS: dict[tuple[Any, ...], StageContext] = {}  # this worker process's open context
_NODE_AUTOTUNE = os.environ.get(AUTOTUNE_ENV)  # the node's own, for runs whose driver has none


def where() -> str:
    return f"pid {os.getpid()} on {socket.gethostname()}"


def _check_setup(setup: WorkerSetup) -> None:
    host = socket.gethostname()
    if setup.version != __version__:
        raise PipelineError(
            f"node {host} runs dragpipe {__version__}, the driver {setup.version}: install "
            "the same dragpipe version on every node of the cluster"
        )
    holder = run_holder(setup.workdir)
    if holder is None or holder.token != setup.run:
        seen = "no lock" if holder is None else f"the lock of another run ({holder.describe()})"
        raise PipelineError(
            f"node {host} finds {seen} in workdir {setup.workdir}: every node must mount the "
            "run's shared workdir at the same path (or the run was taken over)"
        )


def _device(setup: WorkerSetup, gpus: float) -> torch.device:
    name = setup.device
    if gpus <= 0 and name in ("auto", "cuda"):
        name = "cpu"  # no GPU reserved for this job: never use one
    elif name == "auto":
        name = "cuda"
    try:
        return resolve_device(name)
    except PipelineError as exc:
        raise PipelineError(f"node {socket.gethostname()}: {exc}") from None


def _context(setup: WorkerSetup, device: torch.device, display: RemoteDisplay) -> StageContext:
    """The worker process's stage context for ``setup`` (the base generator stays loaded)."""
    key = (
        str(setup.workdir),
        str(setup.generator),
        setup.generator_digest,
        str(device),
        setup.autotune,
    )
    ctx = _CONTEXTS.get(key)
    if ctx is None:
        _CONTEXTS.clear()
        autotune = setup.autotune if setup.autotune is not None else _NODE_AUTOTUNE
        if autotune is None:  # (read when the generator is loaded)
            os.environ.pop(AUTOTUNE_ENV, None)
        else:
            os.environ[AUTOTUNE_ENV] = autotune
        ctx = StageContext.open(setup.workdir, setup.generator, device, display)
        opened = ctx
        # the generator's warnings (autotune cache) go to the job running at the time
        ctx.generators.on_warning = lambda text: opened.display.warn(text)
        if ctx.generators.digest != setup.generator_digest:
            raise PipelineError(
                f"generator {setup.generator} on node {socket.gethostname()} is not the file "
                "the driver read (digest differs): put the spec's files on the shared storage"
            )
        _CONTEXTS[key] = ctx
    ctx.display = display
    ctx.store.report = display.warn
    ctx.checkpoint_every = setup.checkpoint_every
    ctx.run = setup.run
    return ctx


def _failure(exc: Exception) -> JobFailure:
    try:
        error: Exception | None = pickle.loads(pickle.dumps(exc))
    except Exception:  # an exception that does not survive pickling
        error = None
    text = "".join(traceback.format_exception(exc))
    return JobFailure(error, type(exc).__name__, str(exc), text)


def run_on_worker(
    job: Job, setup: WorkerSetup, forced: bool, gpus: float, sink: Any, ticket: str
) -> WorkerReply:
    """Compute ``job`` (see the module docstring). ``sink``: the run's ``EventSink`` actor;
    ``ticket``: the job's name in the events."""
    import ray

    started = time.time()
    attempt = f"{os.getpid()}-{secrets.token_hex(4)}"

    def send(events: list[Event], wait: bool) -> None:
        ref = sink.push.remote(ticket, attempt, events)
        if wait:
            ray.get(ref)

    display = RemoteDisplay(send)
    display.emit(("start", where()), urgent=True)
    outcome, failure = None, None
    try:
        _check_setup(setup)
        torch.set_num_threads(setup.threads)
        ctx = _context(setup, _device(setup, gpus), display)
        for ref in job.needs:
            if not ctx.store.wait_visible(ref):
                raise PipelineError(
                    f"{job.label} {job.stage}: the {ref.stage} result it reads is not visible "
                    f"on node {socket.gethostname()} in {setup.workdir}: is the workdir shared?"
                )
        outcome = run_announced(ctx, job, forced)
    except Exception as exc:
        failure = _failure(exc)
    finally:
        display.flush(wait=True)
    computing = outcome.seconds if outcome is not None else 0.0
    placement = Placement(socket.gethostname(), os.getpid(), started, time.time(), computing)
    return WorkerReply(outcome, failure, placement)
