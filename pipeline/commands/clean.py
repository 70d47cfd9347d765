"""``dragpipe clean SPEC``: remove cached results (and interrupted runs) the spec no longer
uses, keeping everything a rerun would use; ``dragpipe clean --all``: remove every cached
result of the workdir."""

from __future__ import annotations

import argparse

from pipeline.commands import _shared
from pipeline.errors import UsageError

NAME = "clean"
HELP = "remove cached results a spec no longer uses (or all of them with --all)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    _shared.add_spec_argument(parser, required=False)
    _shared.add_store_arguments(parser)
    parser.add_argument(
        "--all", action="store_true", help="remove every cached result and interrupted run"
    )


def _size(total: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if total < 1024 or unit == "GB":
            return f"{total:.0f} {unit}" if unit == "B" else f"{total:.1f} {unit}"
        total /= 1024
    return f"{total} B"


def run(args: argparse.Namespace) -> int:
    from pipeline.plan import JobGraph
    from pipeline.runner import RunOptions, make_context
    from pipeline.store import RunLock, Store

    if args.spec is None and not args.all:
        raise UsageError("clean needs a SPEC (remove what it no longer uses) or --all")
    if args.spec is None and not args.workdir:
        raise UsageError("clean --all without a SPEC needs --workdir DIR")
    workdir = _shared.workdir_of(args, args.spec)
    if not workdir.is_dir():
        print(f"nothing to clean: {workdir} does not exist")
        return 0
    spec = _shared.load(args.spec) if args.spec else None
    store = Store(workdir)
    with RunLock(workdir, timeout=0.0):
        keep: set[tuple[str, str]] = set()
        if spec is not None and not args.all:
            options = RunOptions(workdir=workdir, out=workdir, device="cpu")
            graph = JobGraph.of(spec, make_context(spec, options, _shared.display_of(args)))
            store = graph.store
            keep = {(job.stage, job.key) for job in graph.all_jobs()}
        freed, removed = 0, 0
        for stage, key in store.all_results():
            if (stage, key) in keep:
                continue
            freed += store.size_of(stage, key)
            store.remove(stage, key)
            removed += 1
        for stage, key in store.partials():
            if (stage, key) in keep:  # an interrupted run of the spec: resumable
                continue
            freed += store.partial_size(stage, key)
            store.remove_partial(stage, key)
            removed += 1
        if args.all:
            store.drop_refs()
            freed += store.remove_artifacts()
    kept = f", kept {len(keep)} the spec uses" if keep else ""
    print(f"removed {removed} cached results ({_size(freed)}) from {workdir}{kept}")
    return 0
