"""The Ray executor: ``run_spec_on_ray(spec, options, cluster, display) -> RunReport``.

Same promises as the local executor (``pipeline.runner``): the workdir lock for the whole
run, the same jobs, keys and cache, the same progress lines, summary rows, outputs and
exit codes. What differs is only where and when jobs run:

- every photo's alignment is submitted at once; when it is done its faces give the photo's
  other jobs (``JobGraph.face_jobs``), each submitted as soon as the results it reads
  (``job.needs``) are done: independent photos (and independent edits of one photo) run at
  the same time on different workers, a photo's chain keeps its order; a job whose result
  is already stored is served by the driver (verified, as a local run does) without a task;
- an inversion or drag job reserves ``--gpus-per-job`` GPUs, every job ``--cpus-per-job``
  CPUs (its torch threads);
- a worker process that dies (killed, out of memory, node lost) has its job restarted by
  Ray (``max_retries``); the new attempt takes over the job's lease and resumes from the
  last in-stage checkpoint in the shared ``partial/`` directory;
- a job's own error fails its photo, reported as the local runner does: without
  ``--keep-going`` the run stops (the other jobs are cancelled), with it the others go on;
- Ctrl-C (or any error that ends the run) cancels the running jobs: each gets a
  ``KeyboardInterrupt`` and unwinds (atomic writes, checkpoints kept, leases released);
  those still running after ``CANCEL_GRACE`` seconds are killed, which leaves the cache
  consistent too (only complete results are ever published).

The driver computes nothing itself: it reads the alignments' faces, copies the outputs
into ``--out`` and shows the workers' progress (``pipeline.cluster.events``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import ray
import torch
from ray.exceptions import RayError, TaskCancelledError

from draggan.version import __version__
from pipeline.cluster import ClusterOptions
from pipeline.cluster.connect import connect
from pipeline.cluster.events import EventSink, ProgressRelay
from pipeline.cluster.worker import Placement, WorkerReply, WorkerSetup, run_on_worker
from pipeline.errors import PipelineError, UsageError
from pipeline.execute import Outcome, stored
from pipeline.jobs import Job
from pipeline.plan import JobGraph, PhotoPlan
from pipeline.progress import Display
from pipeline.runner import (
    Row,
    RunOptions,
    RunReport,
    locked_run,
    note_align,
    note_job,
    photo_failed,
)
from pipeline.spec import Spec
from pipeline.stages.align import FaceRecord
from pipeline.stages.context import StageContext
from pipeline.store import Ref, RunLock

GPU_STAGES = ("invert", "edit")  # the stages that run the generator
CANCEL_GRACE = 20.0  # seconds cancelled jobs get to unwind before they are killed
POLL = 0.25  # seconds between looks at the running jobs and the progress events


class WorkerLost(PipelineError):
    """Ray gave up on a job: its worker died on every attempt, or its node was lost."""


def run_spec_on_ray(
    spec: Spec, options: RunOptions, cluster: ClusterOptions, display: Display
) -> RunReport:
    """Run every photo of ``spec`` on a Ray cluster; returns the report (see the module
    docstring)."""
    if options.device == "cuda" and cluster.gpus_per_job <= 0:
        raise UsageError("--device cuda with --executor ray needs --gpus-per-job (e.g. 1)")
    report = RunReport()
    with locked_run(spec, options, display, device=torch.device("cpu")) as (lock, ctx, graph):
        with connect(cluster, display):
            _Scheduler(lock, ctx, graph, options, cluster, display).run(report)
    return report


def worker_setup(
    lock: RunLock, graph: JobGraph, options: RunOptions, cluster: ClusterOptions
) -> WorkerSetup:
    """What every job of this run tells its worker (paths resolved: the same on every node)."""
    return WorkerSetup(
        workdir=options.workdir.resolve(),
        generator=Path(graph.spec.generator).resolve(),
        generator_digest=graph.generator,
        device=options.device,
        threads=cluster.threads,
        checkpoint_every=options.checkpoint_every,
        run=lock.token,
        version=__version__,
    )


@dataclass
class _Photo:
    """One photo's progress on the driver."""

    plan: PhotoPlan
    position: dict[str, int] = field(default_factory=lambda: {"align": 0})  # run order
    faces: list[FaceRecord] | None = None
    done: dict[Ref, Outcome] = field(default_factory=dict)
    waiting: list[Job] = field(default_factory=list)  # jobs whose inputs are not done yet
    rows: list[tuple[int, Row]] = field(default_factory=list)  # (position, row)
    report: RunReport = field(default_factory=RunReport)  # its failure, if it fails
    outputs: list[Path] = field(default_factory=list)
    finished: set[str] = field(default_factory=set)  # slots whose outcome is recorded
    expected: int = 1  # jobs the photo needs (known once its alignment is done)
    failed: bool = False

    @property
    def complete(self) -> bool:
        return not self.failed and self.faces is not None and len(self.finished) == self.expected

    @property
    def id(self) -> str:
        return self.plan.photo_id

    def add(self, job: Job, row: Row) -> None:
        self.rows.append((self.position[job.slot], row))
        self.finished.add(job.slot)


class _Scheduler:
    def __init__(
        self,
        lock: RunLock,
        ctx: StageContext,
        graph: JobGraph,
        options: RunOptions,
        cluster: ClusterOptions,
        display: Display,
    ) -> None:
        self.lock = lock
        self.ctx = ctx
        self.graph = graph
        self.options = options
        self.cluster = cluster
        self.display = display
        self.setup = worker_setup(lock, graph, options, cluster)
        self.task = ray.remote(run_on_worker)
        self.sink = ray.remote(num_cpus=0)(EventSink).remote()
        self.running: dict[ray.ObjectRef, tuple[_Photo, Job]] = {}
        self.cancelled: set[ray.ObjectRef] = set()
        self.tickets: dict[str, Job] = {}
        self.placements: dict[tuple[str, str], Placement] = {}
        self.relay = ProgressRelay(display, self._describe)
        self.stopping = False  # a photo failed without --keep-going: submit nothing more

    def _describe(self, ticket: str) -> str:
        job = self.tickets.get(ticket)
        return ticket if job is None else f"{job.label} {job.stage}"

    # The run -------------------------------------------------------------------------------
    def run(self, report: RunReport) -> None:
        photos = [_Photo(plan) for plan in self.graph.photos]
        try:
            for photo in photos:
                self._serve_or_send(photo, self.graph.align_job(photo.plan))
                self._release(photo)
            while self.running:
                self._step()
            self.lock.check()
        except BaseException:
            self._cancel(list(self.running))
            raise
        finally:
            self._pump()
            self.relay.close()
            ray.kill(self.sink)
            self._merge(photos, report)

    def _step(self) -> None:
        refs = list(self.running)
        ready, _ = ray.wait(refs, num_returns=1, timeout=POLL)
        if ready:  # and whatever else is done by now
            ready, _ = ray.wait(refs, num_returns=len(refs), timeout=0)
        self._pump()
        for ref in ready:
            self._finish(ref)
        self.lock.check()

    def _pump(self) -> None:
        """Show the progress events the workers sent so far."""
        self.relay.apply(ray.get(self.sink.drain.remote()))

    def _serve_or_send(self, photo: _Photo, job: Job) -> None:
        """Serve ``job`` from the store when its result is there, else send it to a worker."""
        forced = self.options.forces(job)
        outcome = None if forced else stored(self.ctx.store, job)
        if outcome is not None:
            self._record_or_fail(photo, job, outcome)
            return
        ticket = f"{job.photo}/{job.slot}"
        self.tickets[ticket] = job
        gpus = self.cluster.gpus_per_job if job.stage in GPU_STAGES else 0.0
        task = self.task.options(
            num_cpus=self.cluster.cpus_per_job,
            num_gpus=gpus,
            max_retries=self.cluster.max_retries,
            retry_exceptions=False,
            name=f"dragpipe {job.label} {job.stage}",
        )
        ref = task.remote(job, self.setup, forced, gpus, self.sink, ticket)
        self.running[ref] = (photo, job)

    def _finish(self, ref: ray.ObjectRef) -> None:
        photo, job = self.running.pop(ref)
        self.relay.finished(f"{job.photo}/{job.slot}")
        cancelled = ref in self.cancelled
        self.cancelled.discard(ref)
        try:
            reply: WorkerReply = ray.get(ref)
        except TaskCancelledError:
            return
        except RayError as exc:
            if not cancelled:
                self._fail(photo, WorkerLost(f"{job.label} {job.stage}: {_ray_error(exc)}"))
            return
        self.placements[(job.photo, job.slot)] = reply.placement
        if photo.failed or cancelled:
            return  # finished anyway; its result is in the cache for the next run
        if reply.failure is not None:
            self.display.detail(reply.failure.traceback)
            self._fail(photo, reply.failure.exception())
            return
        assert reply.outcome is not None
        self._record_or_fail(photo, job, reply.outcome)
        self._release(photo)

    def _record_or_fail(self, photo: _Photo, job: Job, outcome: Outcome) -> None:
        try:
            self._record(photo, job, outcome)
        except Exception as exc:
            self._fail(photo, exc)

    def _record(self, photo: _Photo, job: Job, outcome: Outcome) -> None:
        if not self.ctx.store.wait_visible(job.ref):
            raise PipelineError(
                f"{job.label} {job.stage}: the result a worker published is not visible to "
                f"the driver in {self.options.workdir}: is the workdir shared?"
            )
        photo.done[job.ref] = outcome
        if job.stage == "align":
            photo.faces, row = note_align(self.display, outcome)
            photo.add(job, row)
            jobs = self.graph.face_jobs(photo.plan, photo.faces)
            photo.position.update((item.slot, k + 1) for k, item in enumerate(jobs))
            photo.waiting = [item for item in jobs if self.options.wants(item.stage)]
            photo.expected = 1 + len(photo.waiting)
        else:
            assert photo.faces is not None
            row, files = note_job(self.ctx.store, self.options, outcome, photo.faces)
            photo.add(job, row)
            photo.outputs += files

    def _release(self, photo: _Photo) -> None:
        """Start the photo's jobs whose inputs are all done, until none is left (a job
        served from the store at once can make others ready)."""
        while True:
            ready = [job for job in photo.waiting if all(ref in photo.done for ref in job.needs)]
            if not ready:
                return
            for job in ready:
                if self.stopping or photo.failed:
                    return
                photo.waiting.remove(job)
                self._serve_or_send(photo, job)

    def _fail(self, photo: _Photo, exc: Exception) -> None:
        """The photo failed: cancel its other jobs; without --keep-going, stop the run (a
        bug or bad usage is raised, as the local runner does)."""
        photo.failed = True
        photo.waiting.clear()
        self._cancel([ref for ref, (p, _) in self.running.items() if p is photo], wait=False)
        if photo_failed(photo.report, self.display, photo.id, exc, self.options.keep_going):
            self.stopping = True
            self._cancel(list(self.running), wait=False)

    def _cancel(self, refs: list[ray.ObjectRef], wait: bool = True) -> None:
        """Cancel jobs: a ``KeyboardInterrupt`` in each running one; with ``wait``, those
        still running after ``CANCEL_GRACE`` seconds are killed."""
        refs = [ref for ref in refs if ref not in self.cancelled]
        for ref in refs:
            ray.cancel(ref)
            self.cancelled.add(ref)
        if not wait or not self.running:
            return
        pending = list(self.running)
        self.display.info(f"cancelling {len(pending)} running job(s)")
        _, late = ray.wait(pending, num_returns=len(pending), timeout=CANCEL_GRACE)
        for ref in late:
            ray.cancel(ref, force=True)
        if late:
            ray.wait(late, num_returns=len(late), timeout=CANCEL_GRACE)
        for ref in pending:
            _, job = self.running.pop(ref)
            self.relay.finished(f"{job.photo}/{job.slot}")

    def _merge(self, photos: list[_Photo], report: RunReport) -> None:
        """Each photo's rows in run order, then its failure and outputs, photo by photo."""
        for photo in photos:
            report.rows += [row for _, row in sorted(photo.rows, key=lambda item: item[0])]
            report.rows += photo.report.rows  # the 'failed' row, if any
            report.failures.update(photo.report.failures)
            if self.options.writes_outputs and photo.complete:  # (not one the run stopped)
                report.outputs[photo.id] = photo.outputs
        report.placements.update(self.placements)


def _ray_error(exc: RayError) -> str:
    """A Ray error in one line (its class says what happened to the worker)."""
    text = str(exc).strip().splitlines()
    first = text[0] if text else ""
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__
