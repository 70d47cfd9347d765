"""``dragpipe run SPEC``: run every photo of a spec through align, invert, edit, composite."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.commands import _shared

if TYPE_CHECKING:
    from pipeline.cluster import ClusterOptions
    from pipeline.progress import Display
    from pipeline.runner import RunOptions
    from pipeline.spec import Spec

NAME = "run"
HELP = "run a spec: align, invert, edit and composite every photo (cached, resumable)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    _shared.add_spec_argument(parser)
    _shared.add_run_arguments(parser)
    cluster = parser.add_argument_group("running on a Ray cluster (needs the 'ray' extra)")
    cluster.add_argument(
        "--executor",
        choices=("local", "ray"),
        default="local",
        help="local: one job after the other in this process (default); ray: the jobs as Ray "
        "tasks on a cluster whose nodes all mount --workdir and the spec's files",
    )
    cluster.add_argument(
        "--address",
        metavar="ADDR",
        help="the Ray cluster: auto (the one 'ray start' runs here) or HOST:PORT (its head "
        "node); default: $RAY_ADDRESS, else a new local cluster",
    )
    cluster.add_argument(
        "--gpus-per-job",
        type=float,
        metavar="G",
        help="GPUs each inversion and drag job reserves (default 0: run on CPUs)",
    )
    cluster.add_argument(
        "--cpus-per-job",
        type=float,
        metavar="C",
        help="CPUs each job reserves, also its torch threads (default 1)",
    )


def cluster_of(args: argparse.Namespace) -> ClusterOptions | None:
    """The cluster options of ``--executor ray`` (None for the local executor); a usage
    error when ray is not installed or a cluster flag comes without ``--executor ray``."""
    from pipeline.errors import UsageError

    flags = {
        "--address": getattr(args, "address", None),
        "--gpus-per-job": getattr(args, "gpus_per_job", None),
        "--cpus-per-job": getattr(args, "cpus_per_job", None),
    }
    if getattr(args, "executor", "local") != "ray":
        given = [flag for flag, value in flags.items() if value is not None]
        if given:
            raise UsageError(f"{given[0]} is an option of --executor ray")
        return None
    from pipeline.cluster import ClusterOptions, require_ray

    gpus, cpus = flags["--gpus-per-job"], flags["--cpus-per-job"]
    cluster = ClusterOptions(
        address=flags["--address"],
        gpus_per_job=0.0 if gpus is None else gpus,
        cpus_per_job=1.0 if cpus is None else cpus,
    )
    require_ray()
    return cluster


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


def execute(
    spec: Spec,
    args: argparse.Namespace,
    workdir: Path,
    out: Path,
    cluster: ClusterOptions | None = None,
) -> int:
    """Run (or with --dry-run, only plan) ``spec``, on a Ray cluster when ``cluster`` is
    given; prints the summary; returns the exit code."""
    from pipeline.runner import run_spec

    display = _shared.display_of(args)
    options = options_of(args, workdir, out)
    if args.dry_run:
        return dry_run(spec, options, display)
    with display:
        if cluster is None:
            report = run_spec(spec, options, display)
        else:
            from pipeline.cluster.driver import run_spec_on_ray

            report = run_spec_on_ray(spec, options, cluster, display)
    if display.verbosity >= 0:
        _shared.print_summary(report)
    _shared.print_outputs(report, out, workdir)
    for photo, message in report.failures.items():
        print(f"dragpipe: photo {photo} failed: {message}")
    for note in report.notes:
        print(f"dragpipe: {note}")
    return 1 if report.failures else 0


def dry_run(spec: Spec, options: RunOptions, display: Display) -> int:
    from pipeline.execute import AFTER_ALIGNMENT, CACHED
    from pipeline.plan import JobGraph
    from pipeline.runner import check_writable, make_context
    from pipeline.status import spec_status

    check_writable(spec, options)  # what the real run would find first
    ctx = make_context(spec, options, display, read_only=True)
    statuses = spec_status(JobGraph.of(spec, ctx), options.force)
    _shared.print_status(statuses)
    known = [status for status in statuses if status.state != AFTER_ALIGNMENT]
    todo = sum(status.state != CACHED for status in known)
    line = f"dry run: {todo} of {len(known)} stage results would be computed"
    later = len(statuses) - len(known)
    if later:
        line += f"; {later} more are decided after alignment (which faces, and whether cached)"
    print(line)
    return 0


def run(args: argparse.Namespace) -> int:
    cluster = cluster_of(args)  # before anything else: says at once when ray is missing
    spec = _shared.load(args.spec)
    workdir = _shared.workdir_of(args, args.spec)
    out = _shared.out_of(args, args.spec)
    return execute(spec, args, workdir, out, cluster)
