"""Run a spec: the serial executor of its ``JobGraph`` (``pipeline.plan``).

Photo by photo: the alignment job, then the jobs its faces call for (inversions, drags in
dependency order, composites), each through ``pipeline.execute.run_job`` (cached or
computed), each recompute announced with its reason. Photos are independent: with
``keep_going`` a failing photo is reported and the others go on. After each composite the
files a user sees are copied from the store into ``<out>/<photo id>/``:

- ``<edit>.<ext>``: the edited photo, same format as the input;
- ``<edit>_before.png`` / ``<edit>_after.png``: the aligned face before and after the drag;
- ``<edit>_trajectory.gif``: the drag as an animation.

With ``face: all`` the per-face files get ``_face<i>`` after the edit name.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

import torch

from draggan.atomic_write import atomic_write
from draggan.errors import DragganError
from inversion.errors import InversionError
from inversion.metrics import describe as describe_inversion
from pipeline.errors import PipelineError, UsageError
from pipeline.execute import CACHED, Outcome, judge, run_job
from pipeline.jobs import Job
from pipeline.plan import JobGraph, PhotoPlan
from pipeline.progress import Display
from pipeline.spec import Spec
from pipeline.stages import STAGES
from pipeline.stages import align as align_stage
from pipeline.stages import composite as composite_stage
from pipeline.stages.composite import CompositeTask
from pipeline.stages.context import StageContext
from pipeline.stages.edit import BEFORE, EDITED, TRAJECTORY
from pipeline.store import Result, RunLock
from pipeline.store.keys import sha256_file


@dataclass
class RunOptions:
    """How to run a spec (nothing here changes a result, so nothing here is in a key)."""

    workdir: Path
    out: Path
    only: str | None = None  # stop after this stage (its upstream stages run as needed)
    force: frozenset[str] = frozenset()  # stages to recompute (and everything after them)
    keep_going: bool = False
    device: str = "auto"
    checkpoint_every: int = 25
    lock_timeout: float | None = None  # None: wait for another run as long as it takes


@dataclass
class Row:
    """One line of the summary table."""

    photo: str
    stage: str
    what: str
    status: str  # 'computed' | 'cached' | 'failed'
    seconds: float = 0.0
    metrics: str = ""


@dataclass
class RunReport:
    rows: list[Row] = field(default_factory=list)
    failures: dict[str, str] = field(default_factory=dict)  # photo id -> error message
    outputs: dict[str, list[Path]] = field(default_factory=dict)  # photo id -> files

    @property
    def computed(self) -> int:
        return sum(row.status == "computed" for row in self.rows)


def resolve_device(name: str) -> torch.device:
    """'auto' (CUDA, then MPS, then CPU), or an explicit torch device name."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise UsageError(f"--device {name!r} is not a device: use auto, cpu, cuda or mps") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda: no CUDA GPU is available here; use --device cpu")
    return device


def check_perceptual_weights(plans: list[PhotoPlan]) -> None:
    """Fail before any work when an LPIPS backbone the inversions need is not on disk."""
    from inversion import check_weights

    for plan in plans:
        check_weights(plan.project.lpips_net, plan.project.perceptual_backbone)
        check_weights(plan.tune.lpips_net, plan.tune.perceptual_backbone)


def forced_stages(force: str | None) -> frozenset[str]:
    """``--force STAGE``: that stage and every later one."""
    if force is None:
        return frozenset()
    return frozenset(STAGES[STAGES.index(force) :])


def make_context(spec: Spec, options: RunOptions, display: Display) -> StageContext:
    return StageContext.open(
        options.workdir,
        Path(spec.generator),
        resolve_device(options.device),
        display,
        options.checkpoint_every,
    )


def run_spec(spec: Spec, options: RunOptions, display: Display) -> RunReport:
    """Run every photo of ``spec``; returns the report (the caller prints it)."""
    options.workdir.mkdir(parents=True, exist_ok=True)
    report = RunReport()
    lock = RunLock(
        options.workdir,
        timeout=options.lock_timeout,
        on_wait=lambda holder: display.info(f"waiting for the workdir lock held by {holder}"),
    )
    with lock:
        ctx = make_context(spec, options, display)
        graph = JobGraph.of(spec, ctx)
        check_perceptual_weights(graph.photos)
        for plan in graph.photos:
            try:
                _run_photo(ctx, graph, plan, options, report)
            except Exception as exc:
                known = isinstance(exc, (PipelineError, DragganError, InversionError))
                if not options.keep_going and (not known or isinstance(exc, UsageError)):
                    raise  # a bug (or bad usage) ends the run: the CLI reports it
                message = str(exc) if known else f"internal error: {type(exc).__name__}: {exc}"
                report.failures[plan.photo_id] = message
                report.rows.append(Row(plan.photo_id, "-", "", "failed", metrics=message))
                display.warn(f"photo {plan.photo_id} failed: {message}")
                if not options.keep_going:
                    break
    return report


def _run(ctx: StageContext, job: Job, options: RunOptions) -> Outcome:
    """``run_job``, saying first why the job will be computed (as ``status`` does)."""
    forced = job.stage in options.force
    status = judge(ctx.store, job, forced)
    if status.state != CACHED:
        ctx.display.info(f"{job.label} {job.stage}: computing ({status.why})")
    return run_job(ctx, job, force=forced)


def _row(outcome: Outcome, what: str, metrics: str = "") -> Row:
    job = outcome.job
    status = "computed" if outcome.computed else "cached"
    return Row(job.photo, job.stage, what, status, outcome.seconds, metrics)


def _run_photo(
    ctx: StageContext, graph: JobGraph, plan: PhotoPlan, options: RunOptions, report: RunReport
) -> None:
    pid = plan.photo_id
    align = _run(ctx, graph.align_job(plan), options)
    for note in align.result.info.get("warnings", []):
        ctx.display.warn(f"photo {pid}: {note}")
    faces = align_stage.faces(align.result)
    report.rows.append(_row(align, f"{len(faces)} face(s)"))
    last = STAGES.index(options.only) if options.only else len(STAGES) - 1
    outputs: list[Path] = []
    for job in graph.face_jobs(plan, faces):
        if STAGES.index(job.stage) > last:
            continue
        outcome = _run(ctx, job, options)
        report.rows.append(_row(outcome, job.what, _metrics(outcome.result)))
        if isinstance(job.task, CompositeTask):
            task = job.task
            edits = [
                (faces[k], ctx.store.result(ref))
                for k, ref in zip(task.faces, task.edits, strict=True)
            ]
            folder = options.out / pid
            outputs += _materialise(folder, task.edit, outcome.result, edits, len(faces))
    if last > STAGES.index("invert"):
        report.outputs[pid] = outputs


def _metrics(result: Result) -> str:
    """The summary table's metrics column for a result."""
    if result.stage == "invert":
        return describe_inversion(result.metrics)
    if result.stage == "edit":
        return _edit_metrics(result.metrics)
    if result.stage == "composite":
        return _composite_metrics(result.metrics)
    return ""


def _composite_metrics(m: dict[str, object]) -> str:
    touched = 100 * float(m.get("touched_fraction", 0))  # type: ignore[arg-type]
    if not touched:
        return "changed nothing: output = input photo"
    return f"touched {touched:.1f}%" if touched >= 0.1 else f"touched {touched:.1g}%"


def _edit_metrics(m: dict[str, object]) -> str:
    dist = m.get("final_distance") or []
    text = ""
    if dist:
        text = "distance to target " + " ".join(f"{d:.1f}" for d in dist) + " px"
        stop = m.get("stop_distance")
        text += f" (goal <= {stop:g} px)" if isinstance(stop, (int, float)) else ""
    steps = m.get("steps")
    if steps is not None:
        text += f", {steps} step{'' if steps == 1 else 's'}"
        text += "" if m.get("converged") else " (not converged)"
    return text


def _copy_if_changed(source: Path, target: Path, digest: str | None = None) -> Path:
    """Copy ``source`` to ``target`` atomically unless ``target`` already has its bytes."""
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.is_file() and target.stat().st_size == source.stat().st_size:
        if sha256_file(target) == (digest or sha256_file(source)):
            return target
    with atomic_write(target) as tmp:
        shutil.copyfile(source, tmp)
    return target


def _materialise(
    folder: Path,
    name: str,
    composite: Result,
    edits: list[tuple[align_stage.FaceRecord, Result]],
    face_count: int,
) -> list[Path]:
    """Copy one edit's user-facing files from the store into ``folder``."""
    output = composite_stage.output_file(composite)
    digest = composite.manifest["files"][output.name]["sha256"]
    written = [_copy_if_changed(output, folder / f"{name}{output.suffix}", digest)]
    for record, edit in edits:
        suffix = f"_face{record.index}" if face_count > 1 else ""
        files = edit.manifest["files"]
        for stored, shown in (
            (BEFORE, f"{name}{suffix}_before.png"),
            (EDITED, f"{name}{suffix}_after.png"),
            (TRAJECTORY, f"{name}{suffix}_trajectory.gif"),
        ):
            target = folder / shown
            written.append(_copy_if_changed(edit.file(stored), target, files[stored]["sha256"]))
    return written
