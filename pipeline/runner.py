"""Run a spec: the serial executor of its ``JobGraph`` (``pipeline.plan``).

First every photo's alignment job, with its edits checked against the faces found
(``pipeline.checks``: points inside the crops, masks), so what an alignment decides is
reported before any inversion; then, photo by photo, the jobs its faces call for
(inversions, drags in dependency order, composites), each through
``pipeline.execute.run_job`` (cached or computed), each recompute announced with its reason.
Photos are independent: with ``keep_going`` a failing photo is reported and the others go
on. After each composite the files a user sees are copied from the store into
``<out>/<photo id>/``:

- ``<edit>.<ext>``: the edited photo, same format as the input;
- ``<edit>_before.png`` / ``<edit>_after.png``: the aligned face before and after the drag;
- ``<edit>_trajectory.gif``: the drag as an animation.

With ``face: all`` the per-face files get ``_face<i>`` after the edit name.

What any executor needs is public and shared with the Ray executor (``pipeline.cluster``):
``locked_run`` (checks, lock, context, graph; the spec's results recorded at the end),
``run_announced`` (a job with its reason; Ctrl-C says where a rerun resumes),
``note_align`` / ``check_edits`` / ``note_job`` (summary rows, checks, outputs) and
``record_failure`` (what a photo's error does to the run).
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
from pipeline import summary
from pipeline.checks import edit_notes, edit_problems
from pipeline.errors import Interrupted, PipelineError, UsageError
from pipeline.execute import CACHED, Outcome, judge, run_job, saved_progress
from pipeline.folders import folder_problem
from pipeline.jobs import Job
from pipeline.plan import JobGraph, PhotoPlan
from pipeline.progress import Display
from pipeline.spec import Spec
from pipeline.stages import STAGES
from pipeline.stages import align as align_stage
from pipeline.stages import composite as composite_stage
from pipeline.stages.align import FaceRecord
from pipeline.stages.composite import CompositeTask
from pipeline.stages.context import StageContext
from pipeline.stages.edit import BEFORE, EDITED, TRAJECTORY, EditTask
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
    written: set[Path] = field(default_factory=set)  # the outputs this run (re)wrote
    notes: list[str] = field(default_factory=list)  # said after the summary
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
    read_only: bool = False,
    run: str | None = None,
    device: torch.device | None = None,
) -> StageContext:
    """The run's context (``read_only``: on a store that writes nothing, for status;
    ``run``: the run's lock token; ``device``: instead of ``options.device``, e.g. the CPU
    for a cluster driver that computes nothing)."""
    return StageContext.open(
        options.workdir,
        Path(spec.generator),
        device if device is not None else resolve_device(options.device),
        display,
        options.checkpoint_every,
        run,
        read_only,
    )


def check_writable(spec: Spec, options: RunOptions) -> None:
    """Fail before any work when the run could not write its workdir or its ``--out`` folder
    (a file in the way, a read-only folder): a ``UsageError`` naming the path."""
    problem = Store(options.workdir).unwritable()
    if problem is not None:
        raise UsageError(
            f"cannot use the workdir {options.workdir}: {problem}; fix that, or give "
            "another folder with --workdir DIR"
        )
    folders = [options.out, *(options.out / photo.id for photo in spec.photos)]
    for folder in folders:
        problem = folder_problem(folder)
        if problem is not None:
            raise UsageError(
                f"cannot write the results to {options.out}: {problem}; fix that, or give "
                "another folder with --out DIR"
            )


@contextmanager
def locked_run(
    spec: Spec, options: RunOptions, display: Display, device: torch.device | None = None
) -> Iterator[tuple[RunLock, StageContext, JobGraph]]:
    """What every executor starts with: the workdir and ``--out`` checked writable, the
    workdir locked for the run, its stage context and job graph, the LPIPS weights the
    inversions need checked and the spec recorded in the store (at the end also the results
    it uses, for ``clean``)."""
    check_writable(spec, options)
    options.workdir.mkdir(parents=True, exist_ok=True)
    lock = RunLock(
        options.workdir,
        timeout=options.lock_timeout,
        on_wait=lambda holder: display.info(f"waiting for the workdir lock held by {holder}"),
    )
    with lock:
        ctx = make_context(spec, options, display, run=lock.token, device=device)
        graph = JobGraph.of(spec, ctx)
        check_perceptual_weights(graph.photos)
        if spec.path.is_file():  # so `clean` of another spec keeps this one's work
            ctx.store.record_spec(spec.path)
        try:
            yield lock, ctx, graph
        finally:
            _record_results(ctx, graph)


def run_spec(spec: Spec, options: RunOptions, display: Display) -> RunReport:
    """Run every photo of ``spec``; returns the report (the caller prints it).

    First every photo is aligned and its edits checked against its faces
    (``pipeline.checks``), so a problem any alignment decides is reported before any
    inversion starts; without ``keep_going`` a problem ends the run there. Then each photo's
    inversions, edits and composites, photo by photo.
    """
    report = RunReport()
    with locked_run(spec, options, display) as (lock, ctx, graph):
        _run_photos(lock, ctx, graph, options, report)
    return report


STOPPED_AFTER_ALIGNMENTS = (
    "stopped after the alignments, before any inversion: fix the problems above "
    "(or use --keep-going to run the other photos)"
)


def _run_photos(
    lock: RunLock, ctx: StageContext, graph: JobGraph, options: RunOptions, report: RunReport
) -> None:
    aligned: list[tuple[PhotoPlan, list[FaceRecord]]] = []
    for plan in graph.photos:
        with _photo_failures(plan, options, report, ctx.display):
            aligned.append((plan, _align_photo(ctx, graph, plan, options, report)))
    if report.failures and not options.keep_going:
        report.notes.append(STOPPED_AFTER_ALIGNMENTS)
        return
    for plan, faces in aligned:
        with _photo_failures(plan, options, report, ctx.display):
            _run_photo(ctx, graph, plan, faces, options, report)
        if report.failures and not options.keep_going:
            break
        lock.check()


def _record_results(ctx: StageContext, graph: JobGraph) -> None:
    """Record the results the spec now uses (every job known after this run), for
    ``clean`` when this spec cannot be read later."""
    path = graph.spec.path
    if not path.is_file():
        return
    try:
        ctx.store.record_spec(path, {job.ref for job in graph.all_jobs()})
    except (PipelineError, OSError) as exc:
        ctx.display.warn(f"could not record the results {path} uses: {exc}")


@contextmanager
def _photo_failures(
    plan: PhotoPlan, options: RunOptions, report: RunReport, display: Display
) -> Iterator[None]:
    """A photo's known errors become its failure in the report (a bug, or bad usage, ends the
    run unless ``keep_going``)."""
    try:
        yield
    except Exception as exc:
        record_failure(report, display, plan.photo_id, exc, options.keep_going)


def record_failure(
    report: RunReport, display: Display, photo_id: str, exc: Exception, keep_going: bool
) -> None:
    """Photo ``photo_id`` failed with ``exc``: its failure in the report. Without
    ``keep_going`` a bug (or bad usage) is raised again: it ends the run and the CLI reports
    it (a photo's own error stops the run after this: the caller's to do)."""
    known = isinstance(exc, (PipelineError, DragganError, InversionError))
    if not keep_going and (not known or isinstance(exc, UsageError)):
        raise exc
    message = str(exc) if known else f"internal error: {type(exc).__name__}: {exc}"
    report.failures[photo_id] = message
    report.rows.append(Row(photo_id, "-", "", "failed", metrics=message))
    display.warn(f"photo {photo_id} failed: {message}")


class EditProblems(PipelineError):
    """A photo's edits cannot run on the faces its alignment found (one line per problem)."""


def run_announced(ctx: StageContext, job: Job, forced: bool) -> Outcome:
    """``run_job``, saying first why the job will be computed (as ``status`` does), and on
    Ctrl-C what a rerun will do (``Interrupted``)."""
    status = judge(ctx.store, job, forced)
    if status.state != CACHED:
        ctx.display.info(f"{job.label} {job.stage}: computing ({status.why})")
    try:
        return run_job(ctx, job, force=forced)
    except KeyboardInterrupt:
        raise Interrupted(
            f"during {job.label} {job.stage}; {resume_note(ctx.store, job)}"
        ) from None


def resume_note(store: Store, job: Job) -> str:
    """What a rerun does with an interrupted ``job``: 'projection done, tuning: 4/6 steps
    saved: rerun to resume from step 4 of the tuning', or that it starts again."""
    saved = saved_progress(store, job)
    if saved is not None:
        return f"{saved.status().replace(', will resume', '')}: {saved.rerun()}"
    if isinstance(job.task, EditTask) and not job.task.config.resumable:
        return f"the {job.task.config.backend} drag keeps no steps: rerun to start it again"
    if job.stage in ("invert", "edit"):
        return (
            "no step of it was saved yet (every --checkpoint-every steps): rerun to "
            "start it again; finished results are kept"
        )
    return "rerun to go on: finished results are kept"


def _row(outcome: Outcome, what: str, metrics: str = "") -> Row:
    job = outcome.job
    status = "computed" if outcome.computed else "cached"
    return Row(job.photo, job.stage, what, status, outcome.seconds, metrics)


def _align_photo(
    ctx: StageContext, graph: JobGraph, plan: PhotoPlan, options: RunOptions, report: RunReport
) -> list[FaceRecord]:
    """Align the photo and check its edits against the faces found; returns the faces."""
    faces, row = note_align(ctx.display, run_announced(ctx, graph.align_job(plan), False))
    report.rows.append(row)
    check_edits(ctx.display, plan, faces)
    return faces


def note_align(display: Display, outcome: Outcome) -> tuple[list[FaceRecord], Row]:
    """The faces of an alignment's outcome and its summary row (its warnings are shown)."""
    for note in outcome.result.info.get("warnings", []):
        display.warn(f"photo {outcome.job.photo}: {note}")
    faces = align_stage.faces(outcome.result)
    return faces, _row(outcome, f"{len(faces)} face(s)")


def check_edits(display: Display, plan: PhotoPlan, faces: list[FaceRecord]) -> None:
    """``EditProblems`` when the photo's edits cannot run on its faces; notes are shown."""
    problems = edit_problems(plan, faces)
    if problems:
        raise EditProblems("; ".join(problems))
    for note in edit_notes(plan, faces):
        display.warn(note)


def _run_photo(
    ctx: StageContext,
    graph: JobGraph,
    plan: PhotoPlan,
    faces: list[FaceRecord],
    options: RunOptions,
    report: RunReport,
) -> None:
    outputs: dict[Path, bool] = {}
    for job in graph.face_jobs(plan, faces):
        if options.wants(job.stage):
            row, files = note_job(
                ctx.store, options, run_announced(ctx, job, options.forces(job)), faces
            )
            report.rows.append(row)
            outputs.update(files)
    if options.writes_outputs:
        note_outputs(report, plan.photo_id, outputs)


def note_job(
    store: Store, options: RunOptions, outcome: Outcome, faces: list[FaceRecord]
) -> tuple[Row, dict[Path, bool]]:
    """The summary row of a job after the alignment and, for a composite, the files a user
    sees, copied from the store into ``<out>/<photo id>/`` ({file: whether it was written})."""
    job = outcome.job
    row = _row(outcome, job.what, summary.metrics(outcome.result, faces))
    if not isinstance(job.task, CompositeTask):
        return row, {}
    task = job.task
    edits = [(faces[k], store.result(ref)) for k, ref in zip(task.faces, task.edits, strict=True)]
    folder = options.out / job.photo
    return row, _materialise(folder, task.edit, outcome.result, edits, len(faces))


def note_outputs(report: RunReport, photo_id: str, outputs: dict[Path, bool]) -> None:
    """A finished photo's output files in the report (and which of them this run wrote)."""
    report.outputs[photo_id] = list(outputs)
    report.written.update(path for path, wrote in outputs.items() if wrote)


def _copy_if_changed(source: Path, target: Path, digest: str | None = None) -> bool:
    """Copy ``source`` to ``target`` atomically unless ``target`` already has its bytes;
    returns whether it wrote."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.is_file() and target.stat().st_size == source.stat().st_size:
            if sha256_file(target) == (digest or sha256_file(source)):
                return False
        with atomic_write(target) as tmp:
            shutil.copyfile(source, tmp)
    except OSError as exc:  # e.g. the folder became read-only during the run
        raise PipelineError(
            f"cannot write {target}: {exc.strerror or exc}; the result stays in the cache: "
            "fix the folder and run again (nothing is recomputed)"
        ) from None
    return True


def _materialise(
    folder: Path,
    name: str,
    composite: Result,
    edits: list[tuple[align_stage.FaceRecord, Result]],
    face_count: int,
) -> dict[Path, bool]:
    """Copy one edit's user-facing files from the store into ``folder``: {file: whether it
    was written (False: it already held those bytes)}."""
    output = composite_stage.output_file(composite)
    digest = composite.manifest["files"][output.name]["sha256"]
    target = folder / f"{name}{output.suffix}"
    written = {target: _copy_if_changed(output, target, digest)}
    for record, edit in edits:
        suffix = f"_face{record.index}" if face_count > 1 else ""
        files = edit.manifest["files"]
        for stored, shown in (
            (BEFORE, f"{name}{suffix}_before.png"),
            (EDITED, f"{name}{suffix}_after.png"),
            (TRAJECTORY, f"{name}{suffix}_trajectory.gif"),
        ):
            target = folder / shown
            written[target] = _copy_if_changed(edit.file(stored), target, files[stored]["sha256"])
    return written
