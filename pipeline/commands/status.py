"""``dragpipe status SPEC``: per photo and stage, cached / to be computed / stale and why."""

from __future__ import annotations

import argparse

from pipeline.commands import _shared

NAME = "status"
HELP = "show, per photo and stage, what is cached, what a run would compute and why"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    _shared.add_spec_argument(parser)
    _shared.add_store_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from pipeline.plan import JobGraph
    from pipeline.runner import RunOptions, make_context
    from pipeline.status import spec_status, summarise

    spec = _shared.load(args.spec)
    workdir = _shared.workdir_of(args, args.spec)
    display = _shared.display_of(args)
    ctx = make_context(spec, RunOptions(workdir=workdir, out=workdir, device="cpu"), display)
    statuses = spec_status(JobGraph.of(spec, ctx))
    _shared.print_status(statuses)
    counts = summarise(statuses)
    print(
        f"{counts['cached']} cached, {counts['to be computed']} to be computed, "
        f"{counts['stale']} stale (workdir {workdir})"
    )
    return 0
