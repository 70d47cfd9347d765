"""Running one job, and judging whether it needs to run.

``run_job(ctx, job, force)`` returns the job's result from the store when it is there and
intact, else computes it with ``job.task.compute`` in a ``Pending`` directory (which keeps
its loop checkpoints across interrupted attempts) and publishes it; either way it records
the job's key material under its slot (``Store.write_ref``), which is what ``judge`` diffs
later to say why a result is stale. The job's upstream results (``job.needs``) must be in
the store. It computes holding the result's lease (``Store.job_lease``): another attempt at
the same job (a cluster retry while the first attempt still runs) waits, then finds the
published result. ``force`` discards the checkpoints an earlier run left, not those of an
attempt of the same run (a retried job resumes).

``stored(store, job)`` is the first half alone: the stored result or None (a cluster driver
serves cached jobs with it, without sending them to a worker).

``judge(store, job)`` says, without computing or writing anything, whether the job's result
is cached, to be computed (and why: never computed, result missing, or how far an
interrupted run got: "projection: 10/50 steps saved, will resume") or stale (and what
changed, e.g. "drag parameters changed (lr: 0.001 -> 0.002)").
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from pipeline.jobs import Job, SavedProgress
from pipeline.stages.context import StageContext
from pipeline.store import Result, Store, explain_change

CACHED = "cached"
TO_COMPUTE = "to be computed"
STALE = "stale"
AFTER_ALIGNMENT = "after alignment"  # a job whose key the photo's alignment decides
FORCED = "--force"


@dataclass(frozen=True)
class JobStatus:
    """Whether a job's result is cached; if not, why it will be computed."""

    job: Job
    state: str  # CACHED | TO_COMPUTE | STALE
    why: str = ""

    @property
    def photo(self) -> str:
        return self.job.photo

    @property
    def stage(self) -> str:
        return self.job.stage

    @property
    def what(self) -> str:
        return self.job.what


def judge(store: Store, job: Job, forced: bool = False) -> JobStatus:
    """``job``'s state in ``store`` (``forced``: the run was told to recompute its stage).

    A job an interrupted run left steps of says so ('projection: 10/50 steps saved, will
    resume'); with ``forced`` those steps are dropped, so it says nothing of them."""
    if store.exists(job.stage, job.key):
        return JobStatus(job, TO_COMPUTE, FORCED) if forced else JobStatus(job, CACHED)
    saved = None if forced else saved_progress(store, job)
    ref = store.read_ref(job.photo, job.slot)
    if ref is None:
        return JobStatus(job, TO_COMPUTE, saved.status() if saved else "never computed")
    if ref.get("key") == job.key:
        why = saved.status() if saved else "result missing (removed or damaged)"
        return JobStatus(job, TO_COMPUTE, why)
    why = explain_change(ref["material"], job.material.to_dict())
    return JobStatus(job, STALE, f"{why}; {saved.status()}" if saved else why)


def saved_progress(store: Store, job: Job) -> SavedProgress | None:
    """Where an interrupted computation of ``job`` would resume (None: from the start)."""
    partial = store.partial_state(job.stage, job.key)
    return None if partial is None else job.task.saved_progress(partial)


@dataclass(frozen=True)
class Outcome:
    """A job's result and how it was obtained."""

    job: Job
    result: Result
    computed: bool  # False: served from the store
    seconds: float  # time spent computing (0 when cached)

    @property
    def key(self) -> str:
        return self.result.key


def stored(store: Store, job: Job) -> Outcome | None:
    """``job``'s verified stored result as an outcome (recording its slot's ref), or None."""
    found = store.lookup(job.material)
    if found is None:
        return None
    store.write_ref(job.photo, job.slot, job.material)
    return Outcome(job, found, computed=False, seconds=0.0)


def run_job(ctx: StageContext, job: Job, force: bool = False) -> Outcome:
    """The stored result of ``job``, computing it on a miss (or always with ``force``)."""
    store = ctx.store
    outcome = None if force else stored(store, job)
    if outcome is not None:
        return outcome
    lease = store.job_lease(job.ref, run=ctx.run)
    lease.acquire(
        on_wait=lambda holder: ctx.display.info(
            f"{job.label} {job.stage}: waiting for {holder}, which is computing it"
        )
    )
    try:
        outcome = None if force else stored(store, job)  # published while we waited
        if outcome is None:
            earlier = lease.taken_over
            retry = earlier is not None and ctx.run is not None and earlier.run == ctx.run
            outcome = _compute(ctx, job, lease.check, fresh=force and not retry)
            store.write_ref(job.photo, job.slot, job.material)
    finally:
        lease.release()
    return outcome


def _compute(ctx: StageContext, job: Job, guard: Callable[[], None], fresh: bool) -> Outcome:
    """Compute ``job`` into its pending directory and publish it (``fresh``: drop the
    checkpoints found there first)."""
    pending = ctx.store.begin(job.material, guard)
    if fresh:
        pending.discard()
        pending = ctx.store.begin(job.material, guard)
    start = time.perf_counter()
    metrics, info = job.task.compute(ctx, pending, job.label)
    seconds = time.perf_counter() - start
    result = pending.commit(metrics=metrics, timings={"seconds": round(seconds, 3)}, info=info)
    return Outcome(job, result, computed=True, seconds=seconds)
