"""Running one job, and judging whether it needs to run.

``run_job(ctx, job, force)`` returns the job's result from the store when it is there and
intact, else computes it with ``job.task.compute`` in a ``Pending`` directory (which keeps
its loop checkpoints across interrupted attempts) and publishes it; either way it records
the job's key material under its slot (``Store.write_ref``), which is what ``judge`` diffs
later to say why a result is stale. The job's upstream results (``job.needs``) must be in
the store.

``judge(store, job)`` says, without computing or writing anything, whether the job's result
is cached, to be computed (and why: never computed, result missing) or stale (and what
changed, e.g. "drag parameters changed (lr: 0.001 -> 0.002)").
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from pipeline.jobs import Job
from pipeline.stages.context import StageContext
from pipeline.store import Result, Store, explain_change

CACHED = "cached"
TO_COMPUTE = "to be computed"
STALE = "stale"
FORCED = "--force"


@dataclass(frozen=True)
class JobStatus:
    """Whether a job's result is cached; if not, why it will be computed."""

    job: Job
    state: str  # CACHED | TO_COMPUTE | STALE
    why: str = ""


def judge(store: Store, job: Job, forced: bool = False) -> JobStatus:
    """``job``'s state in ``store`` (``forced``: the run was told to recompute its stage)."""
    if store.exists(job.stage, job.key):
        return JobStatus(job, TO_COMPUTE, FORCED) if forced else JobStatus(job, CACHED)
    ref = store.read_ref(job.photo, job.slot)
    if ref is None:
        return JobStatus(job, TO_COMPUTE, "never computed")
    if ref.get("key") == job.key:
        return JobStatus(job, TO_COMPUTE, "result missing (removed or damaged)")
    return JobStatus(job, STALE, explain_change(ref["material"], job.material.to_dict()))


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


def run_job(ctx: StageContext, job: Job, force: bool = False) -> Outcome:
    """The stored result of ``job``, computing it on a miss (or always with ``force``)."""
    store = ctx.store
    found = None if force else store.lookup(job.material)
    if found is not None:
        outcome = Outcome(job, found, computed=False, seconds=0.0)
    else:
        pending = store.begin(job.material)
        if force:  # recompute from scratch: drop any checkpoints of an earlier attempt
            pending.discard()
            pending = store.begin(job.material)
        start = time.perf_counter()
        metrics, info = job.task.compute(ctx, pending, job.label)
        seconds = time.perf_counter() - start
        result = pending.commit(metrics=metrics, timings={"seconds": round(seconds, 3)}, info=info)
        outcome = Outcome(job, result, computed=True, seconds=seconds)
    store.write_ref(job.photo, job.slot, job.material)
    return outcome
