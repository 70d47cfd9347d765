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

The pieces any executor needs are public and shared with the Ray executor
(``pipeline.cluster``): ``locked_run`` (lock, context, graph, LPIPS check),
``run_announced`` (a job with its reason), ``note_align`` / ``note_job`` (summary rows and
outputs) and ``photo_failed`` (what a photo's error does to the run).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from draggan.atomic_write import atomic_write
from draggan.errors import DragganError
from inversion.errors import InversionError
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
from pipeline.store import Result, RunLock, Store
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

    def wants(self, stage: str) -> bool:
        """Whether the run goes as far as ``stage`` (``--only`` stops after a stage)."""
        return self.only is None or STAGES.index(stage) <= STAGES.index(self.only)

    def forces(self, job: Job) -> bool:
        """Whether ``job`` is recomputed even when cached (``--force``)."""
        return job.stage in self.force

    @property
    def writes_outputs(self) -> bool:
        """Whether the run goes past the inversion (then each photo's outputs are listed)."""
        return self.wants("edit")


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
    # (photo id, slot) -> where and when a cluster worker ran the job (cluster runs only)
    placements: dict[tuple[str, str], Any] = field(default_factory=dict)

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


def make_context(
    spec: Spec,
    options: RunOptions,
    display: Display,
    run: str | None = None,
    device: torch.device | None = None,
) -> StageContext:
    """The stage context of a run (``run``: its lock token; ``device``: instead of
    ``options.device``, e.g. the CPU for a cluster driver that computes nothing)."""
    return StageContext.open(
        options.workdir,
        Path(spec.generator),
        device if device is not None else resolve_device(options.device),
        display,
        options.checkpoint_every,
        run,
    )


@contextmanager
def locked_run(
    spec: Spec, options: RunOptions, display: Display, device: torch.device | None = None
) -> Iterator[tuple[RunLock, StageContext, JobGraph]]:
    """The workdir locked for this run, its stage context and job graph, with the LPIPS
    weights the inversions need checked: what every executor starts with."""
    options.workdir.mkdir(parents=True, exist_ok=True)
    lock = RunLock(
        options.workdir,
        timeout=options.lock_timeout,
        on_wait=lambda holder: display.info(f"waiting for the workdir lock held by {holder}"),
    )
    with lock:
        ctx = make_context(spec, options, display, lock.token, device)
        graph = JobGraph.of(spec, ctx)
        check_perceptual_weights(graph.photos)
        yield lock, ctx, graph


def run_spec(spec: Spec, options: RunOptions, display: Display) -> RunReport:
    """Run every photo of ``spec``; returns the report (the caller prints it)."""
    report = RunReport()
    with locked_run(spec, options, display) as (lock, ctx, graph):
        for plan in graph.photos:
            try:
                _run_photo(ctx, graph, plan, options, report)
            except Exception as exc:
                if photo_failed(report, display, plan.photo_id, exc, options.keep_going):
                    break
            lock.check()
    return report


def photo_failed(
    report: RunReport, display: Display, photo_id: str, exc: Exception, keep_going: bool
) -> bool:
    """Record that photo ``photo_id`` failed with ``exc``; True when the run must stop.

    Without ``keep_going`` a bug (or bad usage) is raised again: it ends the run and the CLI
    reports it; a photo's own error (bad photo, no face, ...) is recorded and stops the run.
    With ``keep_going`` every error is recorded and the other photos go on."""
    known = isinstance(exc, (PipelineError, DragganError, InversionError))
    if not keep_going and (not known or isinstance(exc, UsageError)):
        raise exc
    message = str(exc) if known else f"internal error: {type(exc).__name__}: {exc}"
    report.failures[photo_id] = message
    report.rows.append(Row(photo_id, "-", "", "failed", metrics=message))
    display.warn(f"photo {photo_id} failed: {message}")
    return not keep_going


def run_announced(ctx: StageContext, job: Job, forced: bool) -> Outcome:
    """``run_job``, saying first why the job will be computed (as ``status`` does)."""
    status = judge(ctx.store, job, forced)
    if status.state != CACHED:
        ctx.display.info(f"{job.label} {job.stage}: computing ({status.why})")
    return run_job(ctx, job, force=forced)


def note_align(display: Display, outcome: Outcome) -> tuple[list[align_stage.FaceRecord], Row]:
    """The faces of an alignment's outcome and its summary row (its warnings are shown)."""
    for note in outcome.result.info.get("warnings", []):
        display.warn(f"photo {outcome.job.photo}: {note}")
    faces = align_stage.faces(outcome.result)
    return faces, _row(outcome, f"{len(faces)} face(s)")


def note_job(
    store: Store, options: RunOptions, outcome: Outcome, faces: list[align_stage.FaceRecord]
) -> tuple[Row, list[Path]]:
    """The summary row of a job after the alignment and, for a composite, the files a user
    sees, copied from the store into ``<out>/<photo id>/``."""
    job = outcome.job
    row = _row(outcome, job.what, _metrics(outcome.result))
    if not isinstance(job.task, CompositeTask):
        return row, []
    task = job.task
    edits = [(faces[k], store.result(ref)) for k, ref in zip(task.faces, task.edits, strict=True)]
    folder = options.out / job.photo
    return row, _materialise(folder, task.edit, outcome.result, edits, len(faces))


def _row(outcome: Outcome, what: str, metrics: str = "") -> Row:
    job = outcome.job
    status = "computed" if outcome.computed else "cached"
    return Row(job.photo, job.stage, what, status, outcome.seconds, metrics)


def _run_photo(
    ctx: StageContext, graph: JobGraph, plan: PhotoPlan, options: RunOptions, report: RunReport
) -> None:
    faces, row = note_align(ctx.display, run_announced(ctx, graph.align_job(plan), False))
    report.rows.append(row)
    outputs: list[Path] = []
    for job in graph.face_jobs(plan, faces):
        if options.wants(job.stage):
            row, files = note_job(
                ctx.store, options, run_announced(ctx, job, options.forces(job)), faces
            )
            report.rows.append(row)
            outputs += files
    if options.writes_outputs:
        report.outputs[plan.photo_id] = outputs


def _metrics(result: Result) -> str:
    """The summary table's metrics column for a result."""
    if result.stage == "invert":
        return _invert_metrics(result.metrics)
    if result.stage == "edit":
        return _edit_metrics(result.metrics)
    if result.stage == "composite":
        return f"touched {100 * result.metrics.get('touched_fraction', 0):.1f}%"
    return ""


def _invert_metrics(m: dict[str, object]) -> str:
    parts = []
    for name, fmt in (
        ("psnr", "PSNR {:.2f} dB"),
        ("lpips", "LPIPS {:.3f}"),
        ("identity_similarity", "identity {:.3f}"),
    ):
        if isinstance(m.get(name), (int, float)):
            parts.append(fmt.format(m[name]))
    return ", ".join(parts)


def _edit_metrics(m: dict[str, object]) -> str:
    dist = m.get("final_distance") or []
    text = "distance " + " ".join(f"{d:.1f}" for d in dist) + " px" if dist else ""
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
