"""The Ray executor: ``run_spec_on_ray(spec, options, cluster, display) -> RunReport``.

Same promises as the local executor (``pipeline.runner``): the workdir lock for the whole
run, the same jobs, keys and cache, the same progress lines, summary rows, outputs and
exit codes. What differs is only where and when jobs run:

- every photo's alignment is submitted at once; when it is done its faces give the photo's
  other jobs (``JobGraph.face_jobs``, its edits checked against the faces first), each
  submitted as soon as the results it reads (``job.needs``) are done: independent photos
  (and independent edits of one photo) run at the same time on different workers, a
  photo's chain keeps its order; a job whose result is already stored is served by the
  driver (verified, as a local run does) without a task. Without ``--keep-going`` no
  inversion starts before every alignment is done, and a photo that failed there stops the
  run, as locally ("stopped after the alignments");
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
  consistent too (only complete results are ever published). Ctrl-C then says where a
  rerun resumes each cancelled job, as a local run does for its one job.

The driver computes nothing itself: it reads the alignments' faces, copies the outputs
into ``--out`` and shows the workers' progress (``pipeline.cluster.events``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import ray
import torch
from ray.exceptions import RayError, TaskCancelledError

from draggan.autotune import ENV_VAR as AUTOTUNE_ENV
from draggan.version import __version__
from pipeline.cluster import ClusterOptions
from pipeline.cluster.connect import connect
from pipeline.cluster.events import EventSink, ProgressRelay
from pipeline.cluster.worker import Placement, WorkerReply, WorkerSetup, run_on_worker
from pipeline.errors import Interrupted, PipelineError, UsageError
from pipeline.execute import Outcome, stored
from pipeline.jobs import Job
from pipeline.plan import JobGraph, PhotoPlan
from pipeline.progress import Display
from pipeline.runner import (
    STOPPED_AFTER_ALIGNMENTS,
    Row,
    RunOptions,
    RunReport,
    check_edits,
    locked_run,
    note_align,
    note_job,
    note_outputs,
    record_failure,
    resume_note,
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
        autotune=os.environ.get(AUTOTUNE_ENV),
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
    finished: set[str] = field(default_factory=set)  # slots whose outcome is recorded
    expected: int = 1  # jobs the photo needs (known once its alignment is done)
    outputs: dict[Path, bool] = field(default_factory=dict)  # file -> written by this run
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
        # Without --keep-going, no photo goes past its alignment before all are aligned.
        self.gated = not options.keep_going
        self.photos: list[_Photo] = []
        self.notes: list[str] = []

    def _describe(self, ticket: str) -> str:
        job = self.tickets.get(ticket)
        return ticket if job is None else f"{job.label} {job.stage}"

    # The run -------------------------------------------------------------------------------
    def run(self, report: RunReport) -> None:
        self.photos = photos = [_Photo(plan) for plan in self.graph.photos]
        try:
            for photo in photos:
                self._serve_or_send(photo, self.graph.align_job(photo.plan))
                self._release(photo)
            self._open_gate()
            while self.running:
                self._step()
            self.lock.check()
        except KeyboardInterrupt:
            cancelled = [job for _, job in self.running.values()]
            self._cancel(list(self.running))
            raise Interrupted(self._interrupted(cancelled)) from None
        except BaseException:
            self._cancel(list(self.running))
            raise
        finally:
            self._pump()
            self.relay.close()
            ray.kill(self.sink)
            self._merge(photos, report)

    def _interrupted(self, jobs: list[Job]) -> str:
        """What a rerun does with the jobs Ctrl-C cancelled."""
        if not jobs:
            return ""
        said = "; ".join(
            f"{job.label} {job.stage}: {resume_note(self.ctx.store, job)}" for job in jobs
        )
        return f"{len(jobs)} running job(s) cancelled; {said}"

    def _open_gate(self) -> None:
        """Once every photo is aligned (or failed there), let the photos go on; without
        --keep-going a photo that failed there stops the run first, as locally."""
        if not self.gated or not all(p.faces is not None or p.failed for p in self.photos):
            return
        self.gated = False
        if any(p.failed for p in self.photos):
            self.stopping = True
            self.notes.append(STOPPED_AFTER_ALIGNMENTS)
            return
        for photo in self.photos:
            self._release(photo)

    def _step(self) -> None:
        refs = list(self.running)
        ready, _ = ray.wait(refs, num_returns=1, timeout=POLL)
        if ready:  # and whatever else is done by now
            ready, _ = ray.wait(refs, num_returns=len(refs), timeout=0)
        self._pump()
        for ref in ready:
            self._finish(ref)
        self._open_gate()
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
            faces, row = note_align(self.display, outcome)
            photo.add(job, row)
            check_edits(self.display, photo.plan, faces)
            jobs = self.graph.face_jobs(photo.plan, faces)
            photo.position.update((item.slot, k + 1) for k, item in enumerate(jobs))
            photo.waiting = [item for item in jobs if self.options.wants(item.stage)]
            photo.expected = 1 + len(photo.waiting)
            photo.faces = faces
        else:
            assert photo.faces is not None
            row, files = note_job(self.ctx.store, self.options, outcome, photo.faces)
            photo.add(job, row)
            photo.outputs.update(files)

    def _release(self, photo: _Photo) -> None:
        """Start the photo's jobs whose inputs are all done, until none is left (a job
        served from the store at once can make others ready)."""
        if self.gated:
            return
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
        record_failure(photo.report, self.display, photo.id, exc, self.options.keep_going)
        if not self.options.keep_going and not self.gated:
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
        """The rows in a local run's order: every photo's alignment (and its failure there),
        then photo by photo the rest in run order (and a later failure); failures, outputs."""
        for photo in photos:
            report.rows += [row for position, row in photo.rows if position == 0]
            if photo.faces is None:
                report.rows += photo.report.rows  # failed at its alignment
        for photo in photos:
            rows = sorted((item for item in photo.rows if item[0] > 0), key=lambda item: item[0])
            report.rows += [row for _, row in rows]
            if photo.faces is not None:
                report.rows += photo.report.rows  # the 'failed' row, if any
            report.failures.update(photo.report.failures)
            if self.options.writes_outputs and photo.complete:  # (not one the run stopped)
                note_outputs(report, photo.id, photo.outputs)
        report.notes += self.notes
        report.placements.update(self.placements)


def _ray_error(exc: RayError) -> str:
    """A Ray error in one line (its class says what happened to the worker)."""
    text = str(exc).strip().splitlines()
    first = text[0] if text else ""
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__
