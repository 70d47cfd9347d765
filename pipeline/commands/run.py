"""``dragpipe run SPEC``: run every photo of a spec through align, invert, edit, composite."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.commands import _shared

if TYPE_CHECKING:
    from pipeline.progress import Display
    from pipeline.runner import RunOptions
    from pipeline.spec import Spec

NAME = "run"
HELP = "run a spec: align, invert, edit and composite every photo (cached, resumable)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    _shared.add_spec_argument(parser)
    _shared.add_run_arguments(parser)


def options_of(args: argparse.Namespace, workdir: Path, out: Path) -> RunOptions:
    from pipeline.errors import UsageError
    from pipeline.runner import RunOptions, forced_stages

    if args.checkpoint_every < 1:
        raise UsageError(f"--checkpoint-every must be >= 1, got {args.checkpoint_every}")
    return RunOptions(
        workdir=workdir,
        out=out,
        only=args.only,
        force=forced_stages(args.force),
        keep_going=args.keep_going,
        device=args.device,
        checkpoint_every=args.checkpoint_every,
        lock_timeout=0.0 if args.no_wait else None,
    )


def execute(spec: Spec, args: argparse.Namespace, workdir: Path, out: Path) -> int:
    """Run (or with --dry-run, only plan) ``spec``; prints the summary; returns the exit code."""
    from pipeline.runner import run_spec

    display = _shared.display_of(args)
    options = options_of(args, workdir, out)
    if args.dry_run:
        return dry_run(spec, options, display)
    with display:
        report = run_spec(spec, options, display)
    if display.verbosity >= 0:
        _shared.print_summary(report)
    files = [path for paths in report.outputs.values() for path in paths]
    if files:
        print(f"results in {out}/ ({len(files)} files; cache in {workdir}/)")
    for photo, message in report.failures.items():
        print(f"dragpipe: photo {photo} failed: {message}")
    return 1 if report.failures else 0


def dry_run(spec: Spec, options: RunOptions, display: Display) -> int:
    from pipeline.execute import CACHED
    from pipeline.plan import JobGraph
    from pipeline.runner import make_context
    from pipeline.status import spec_status

    statuses = spec_status(JobGraph.of(spec, make_context(spec, options, display)), options.force)
    _shared.print_status(statuses)
    todo = sum(status.state != CACHED for status in statuses)
    print(f"dry run: {todo} of {len(statuses)} stage results would be computed")
    return 0


def run(args: argparse.Namespace) -> int:
    spec = _shared.load(args.spec)
    workdir = _shared.workdir_of(args, args.spec)
    out = _shared.out_of(args, args.spec)
    return execute(spec, args, workdir, out)
