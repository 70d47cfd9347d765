"""What a run of a spec would do, without running anything: per job, whether its result is
cached, to be computed, or stale (and why).

Every key is computed from the spec, the input files' digests and the upstream keys alone
(never from upstream results' contents), so this needs no computation. The jobs after a
photo's alignment (their number, and their keys, which follow the aligned faces) are known
only once it is stored; before, they are listed as decided after alignment
(``JobGraph.outline``).
"""

from __future__ import annotations

from pipeline.execute import AFTER_ALIGNMENT, CACHED, STALE, TO_COMPUTE, JobStatus, judge
from pipeline.plan import JobGraph, Later

Status = JobStatus | Later  # a ``Later`` reads as a status: its state is AFTER_ALIGNMENT


def spec_status(graph: JobGraph, force: frozenset[str] = frozenset()) -> list[Status]:
    """Every job of the graph with its state, in run order (``force``: stages a run would
    recompute even when cached); what the alignments have yet to decide as ``Later``."""
    out: list[Status] = []
    for photo in graph.photos:
        for item in graph.outline(photo):
            if isinstance(item, Later):
                out.append(item)
            else:
                out.append(judge(graph.store, item, item.stage in force))
    return out


def summarise(statuses: list[Status]) -> dict[str, int]:
    """How many jobs are in each state."""
    counts = {CACHED: 0, TO_COMPUTE: 0, STALE: 0, AFTER_ALIGNMENT: 0}
    for status in statuses:
        counts[status.state] += 1
    return counts


def counts_line(counts: dict[str, int]) -> str:
    """'3 cached, 1 to be computed, 0 stale' (+ ', 4 decided after alignment')."""
    line = f"{counts[CACHED]} cached, {counts[TO_COMPUTE]} to be computed, {counts[STALE]} stale"
    if counts[AFTER_ALIGNMENT]:
        line += f", {counts[AFTER_ALIGNMENT]} decided after alignment"
    return line
