"""What a run of a spec would do, without running anything: per job, whether its result is
cached, to be computed, or stale (and why).

Every key is computed from the spec, the input files' digests and the upstream keys alone
(never from upstream results' contents), so this needs no computation; the number of faces
of a ``face: all`` photo comes from its stored alignment (see ``JobGraph.jobs``).
"""

from __future__ import annotations

from pipeline.execute import CACHED, STALE, TO_COMPUTE, JobStatus, judge
from pipeline.plan import JobGraph


def spec_status(graph: JobGraph, force: frozenset[str] = frozenset()) -> list[JobStatus]:
    """Every job of the graph with its state, in run order (``force``: stages a run would
    recompute even when cached)."""
    return [judge(graph.store, job, job.stage in force) for job in graph.all_jobs()]


def summarise(statuses: list[JobStatus]) -> dict[str, int]:
    """How many jobs are in each state."""
    counts = {CACHED: 0, TO_COMPUTE: 0, STALE: 0}
    for status in statuses:
        counts[status.state] += 1
    return counts
