"""``dragpipe clean SPEC``: remove the cached results (and interrupted runs) that no spec using
the workdir still references; ``dragpipe clean --all``: every cached result of the workdir,
and its reusable exports (``artifacts/``, e.g. ONNX).

Specs in one folder share its ``.dragpipe/``, so every ``run`` records its spec in the store.
``clean SPEC`` keeps what SPEC uses now and what every other recorded spec uses now (read
again, so an edited spec's superseded results go); a recorded spec that can no longer be
read keeps the results its last run used, and one that no longer exists keeps nothing (both
are said). It lists what it would remove, with sizes, and asks before removing (``--yes``:
without asking; ``--dry-run``: only the list).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

from pipeline.commands import _shared
from pipeline.errors import UsageError

NAME = "clean"
HELP = "remove cached results no spec using the workdir references (or all with --all)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    _shared.add_spec_argument(parser, required=False)
    _shared.add_store_arguments(parser)
    parser.add_argument(
        "--all", action="store_true", help="remove every cached result and interrupted run"
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="list what would be removed, remove nothing"
    )
    parser.add_argument("-y", "--yes", action="store_true", help="remove without asking")


@dataclass(frozen=True)
class Removal:
    """One stored result (or interrupted one) that nothing references."""

    stage: str
    key: str
    size: int
    partial: bool  # an interrupted computation rather than a result
    names: tuple[str, ...]  # the slots that last used it ('hopper edit-brow-face0')

    def line(self) -> str:
        kind = f"{self.stage} (interrupted)" if self.partial else self.stage
        named = ", ".join(self.names) or "no longer named by any photo"
        return f"  {kind:<24} {self.key[:12]}  {_size(self.size):>9}  {named}"


def _size(total: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if total < 1024 or unit == "GB":
            return f"{total:.0f} {unit}" if unit == "B" else f"{total:.1f} {unit}"
        total /= 1024
    return f"{total} B"


def run(args: argparse.Namespace) -> int:
    from pipeline.store import RunLock, Store

    if args.spec is None and not args.all:
        raise UsageError("clean needs a SPEC (remove what no spec uses any more) or --all")
    if args.spec is None and not args.workdir:
        raise UsageError("clean --all without a SPEC needs --workdir DIR")
    workdir = _shared.workdir_of(args, args.spec)
    if not workdir.is_dir():
        print(f"nothing to clean: {workdir} does not exist")
        return 0
    spec = _shared.load(args.spec) if args.spec and not args.all else None
    store = Store(workdir, read_only=args.dry_run)
    if args.dry_run:
        return _clean(args, store, spec, workdir)
    with RunLock(workdir, timeout=0.0):
        return _clean(args, store, spec, workdir)


def _clean(args: argparse.Namespace, store, spec, workdir: Path) -> int:
    keep, users, gone = (set(), [], []) if spec is None else _kept(args, store, spec)
    removals = _removals(store, keep)
    exports = store.artifacts_size() if args.all else 0  # reusable exports (e.g. ONNX)
    total = sum(item.size for item in removals) + exports
    kept = len(store.all_results()) - sum(not item.partial for item in removals)
    if not removals and not exports:
        print(f"nothing to remove from {workdir}: {_kept_words(kept, users)}")
        return 0
    what = "every cached result" if args.all else "used by no spec that uses this workdir"
    print(f"{len(removals)} cached results ({_size(total)}) in {workdir}, {what}:")
    for item in removals:
        print(item.line())
    if exports:
        print(f"  {'exported artifacts':<24} {'':12}  {_size(exports):>9}  (e.g. ONNX exports)")
    if kept:
        print(_kept_words(kept, users))
    if args.dry_run:
        print("dry run: nothing removed")
        return 0
    if not args.yes and not _confirmed(f"remove these {len(removals)} ({_size(total)})?"):
        print("nothing removed")
        return 0
    for item in removals:
        if item.partial:
            store.remove_partial(item.stage, item.key)
        else:
            store.remove(item.stage, item.key)
    for recorded in gone:
        store.forget_spec(recorded)
    if args.all:
        store.remove_artifacts()
        store.drop_refs()
        store.forget_specs()
    print(f"removed {len(removals)} cached results ({_size(total)}) from {workdir}")
    return 0


def _kept(args: argparse.Namespace, store, spec):
    """(results to keep, the specs they belong to, records of specs that no longer exist):
    what ``spec`` uses now and what every other recorded spec uses (see the module doc)."""
    from pipeline.errors import PipelineError
    from pipeline.plan import JobGraph
    from pipeline.runner import RunOptions, make_context
    from pipeline.spec import load_spec

    display = _shared.display_of(args)
    this = spec.path.resolve()
    keep, users, gone = set(), [spec.path.name], []
    for other in [None, *store.recorded_specs()]:
        if other is not None and other.path == this:
            continue
        if other is not None and not other.path.is_file():
            print(
                f"note: {other.path} ran in this workdir but no longer exists: its results "
                "are not kept (its record is dropped when they are removed)"
            )
            gone.append(other)
            continue
        try:
            current = spec if other is None else load_spec(other.path)
            options = RunOptions(workdir=store.root, out=store.root, device="cpu")
            ctx = make_context(current, options, display, read_only=True)
            keep |= {job.ref for job in JobGraph.of(current, ctx).all_jobs()}
        except PipelineError as exc:
            if other is None:
                raise
            keep |= other.results
            print(
                f"note: {other.path} ran in this workdir but cannot be read now ({exc}); "
                f"keeping the {len(other.results)} results its last run used"
            )
        if other is not None:
            users.append(other.path.name)
    return keep, users, gone


def _kept_words(kept: int, users: list[str]) -> str:
    """'kept 4 cached results used by a.yaml, b.yaml'."""
    if not kept:
        return "no cached result is kept"
    return f"kept {kept} cached results used by {', '.join(users)}"


def _removals(store, keep) -> list[Removal]:
    from pipeline.store import Ref

    names = store.ref_names()
    found = []
    for stage, key in store.all_results():
        if Ref(stage, key) not in keep:
            named = tuple(names.get(Ref(stage, key), ()))
            found.append(Removal(stage, key, store.size_of(stage, key), False, named))
    for stage, key in store.partials():
        if Ref(stage, key) not in keep:  # an interrupted run of a spec in use: resumable
            named = tuple(names.get(Ref(stage, key), ()))
            found.append(Removal(stage, key, store.partial_size(stage, key), True, named))
    return found


def _confirmed(question: str) -> bool:
    """Ask on the terminal; without an answer (no input), a UsageError saying what to do."""
    print(f"{question} [y/N] ", end="", flush=True)
    answer = sys.stdin.readline()
    if not answer:
        print()
        raise UsageError(
            "clean needs a yes to remove them: answer y, or rerun with --yes "
            "(--dry-run only lists them)"
        )
    return answer.strip().lower() in ("y", "yes")
