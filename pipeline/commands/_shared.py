"""Helpers shared by the commands (not a command itself)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table

from pipeline.progress import Display
from pipeline.stages import STAGES

if TYPE_CHECKING:
    from pipeline.execute import JobStatus
    from pipeline.runner import RunReport
    from pipeline.spec import Spec

DEFAULT_WORKDIR = ".dragpipe"
DEFAULT_OUT = "dragpipe-out"


def add_checkpoint_argument(parser: argparse.ArgumentParser) -> None:
    """The positional CHECKPOINT of the commands that read a generator file."""
    parser.add_argument(
        "checkpoint",
        type=Path,
        metavar="CHECKPOINT",
        help="an NVIDIA StyleGAN2 .pkl (PyTorch or TensorFlow) or a dragpipe .safetensors/.json",
    )


def add_spec_argument(parser: argparse.ArgumentParser, required: bool = True) -> None:
    parser.add_argument(
        "spec", metavar="SPEC", nargs=None if required else "?", help="the YAML spec file"
    )


def add_store_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--workdir",
        metavar="DIR",
        help=f"stage cache directory (default: {DEFAULT_WORKDIR}/ beside the spec)",
    )


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    add_store_arguments(parser)
    parser.add_argument(
        "--out",
        metavar="DIR",
        help=f"where the edited photos go (default: {DEFAULT_OUT}/ beside the spec)",
    )
    parser.add_argument(
        "--only",
        choices=STAGES,
        help="stop after this stage (the stages before it run as needed)",
    )
    parser.add_argument(
        "--force",
        choices=STAGES,
        help="recompute this stage and every later one even when cached",
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="say what would be computed, compute nothing"
    )
    parser.add_argument(
        "--keep-going", action="store_true", help="go on with the other photos when one fails"
    )
    parser.add_argument(
        "--device", default="auto", help="auto (default: CUDA, then MPS, then CPU), cpu, cuda, mps"
    )
    parser.add_argument(
        "--checkpoint-every",
        type=int,
        default=25,
        metavar="N",
        help="save the inversion loops' state every N steps so a killed run resumes (25)",
    )
    parser.add_argument(
        "--no-wait",
        action="store_true",
        help="fail at once when another run is using the workdir (default: wait for it)",
    )


def load(spec_path: str) -> Spec:
    from pipeline.spec import load_spec

    return load_spec(Path(spec_path))


def workdir_of(args: argparse.Namespace, spec_path: str | None) -> Path:
    if getattr(args, "workdir", None):
        return Path(args.workdir)
    base = Path(spec_path).resolve().parent if spec_path else Path.cwd()
    return base / DEFAULT_WORKDIR


def out_of(args: argparse.Namespace, spec_path: str) -> Path:
    if getattr(args, "out", None):
        return Path(args.out)
    return Path(spec_path).resolve().parent / DEFAULT_OUT


def display_of(args: argparse.Namespace) -> Display:
    verbosity = -1 if getattr(args, "quiet", False) else int(getattr(args, "verbose", 0))
    return Display(verbosity)


def _console() -> Console:
    return Console(
        file=sys.stdout, highlight=False, soft_wrap=False, width=max(100, Console().width)
    )


def _seconds(value: float) -> str:
    if value <= 0:
        return "-"
    return f"{value:.1f}s" if value < 60 else f"{int(value // 60)}m{int(value % 60):02d}s"


def print_summary(report: RunReport) -> None:
    table = Table(title="dragpipe run", title_justify="left")
    for column in ("photo", "stage", "what", "result", "time", "metrics"):
        table.add_column(column, overflow="fold")
    for row in report.rows:
        style = {"computed": "green", "cached": "cyan", "failed": "red"}.get(row.status)
        table.add_row(
            row.photo,
            row.stage,
            row.what,
            row.status,
            _seconds(row.seconds),
            row.metrics,
            style=style,
        )
    _console().print(table)


def print_status(statuses: list[JobStatus]) -> None:
    table = Table(title="dragpipe status", title_justify="left")
    for column in ("photo", "stage", "what", "state", "why"):
        table.add_column(column, overflow="fold")
    for status in statuses:
        style = {"cached": "cyan", "stale": "yellow"}.get(status.state, "")
        job = status.job
        table.add_row(job.photo, job.stage, job.what, status.state, status.why, style=style)
    _console().print(table)
