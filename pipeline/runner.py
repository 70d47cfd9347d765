"""Run a spec: per photo align -> invert -> each edit -> composite, each stage cached.

Photos are independent: with ``keep_going`` a failing photo is reported and the others go
on. Edits run in dependency order (an edit with ``from: <other>`` starts from the other
edit's latent). Every stage result comes from the store when its key is there; the files a
user sees are then copied into ``<out>/<photo id>/``:

- ``<edit>.<ext>``: the edited photo, same format as the input;
- ``<edit>_before.png`` / ``<edit>_after.png``: the aligned face before and after the drag;
- ``<edit>_trajectory.gif``: the drag as an animation.

With ``face: all`` the per-face files get ``_face<i>`` after the edit name.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from draggan.errors import DragganError
from inversion.errors import InversionError
from inversion.metrics import describe as describe_inversion
from pipeline.errors import PipelineError, UsageError
from pipeline.plan import PhotoPlan, plan_photos
from pipeline.progress import Display
from pipeline.stages import STAGES
from pipeline.stages import align as align_stage
from pipeline.stages import composite as composite_stage
from pipeline.stages import edit as edit_stage
from pipeline.stages import invert as invert_stage
from pipeline.stages.common import Outcome, StageContext
from pipeline.stages.generator import generator_resolution
from pipeline.store import Result, RunLock, Store
from pipeline.store.keys import sha256_file


@dataclass
class RunOptions:
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
        check_weights(plan.project_config.lpips_net, plan.project_config.perceptual_backbone)
        check_weights(plan.tune_config.lpips_net, plan.tune_config.perceptual_backbone)


def forced_stages(force: str | None) -> frozenset[str]:
    """``--force STAGE``: that stage and every later one."""
    if force is None:
        return frozenset()
    return frozenset(STAGES[STAGES.index(force) :])


def make_context(spec: Any, options: RunOptions, display: Display) -> StageContext:
    store = Store(options.workdir, report=display.warn)
    return StageContext(
        store=store,
        display=display,
        device=resolve_device(options.device),
        generator_path=Path(spec.generator),
        force=options.force,
        checkpoint_every=options.checkpoint_every,
    )


def run_spec(spec: Any, options: RunOptions, display: Display) -> RunReport:
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
        resolution = generator_resolution(ctx)
        plans = plan_photos(spec, resolution)
        check_perceptual_weights(plans)
        for plan in plans:
            try:
                _run_photo(ctx, plan, options, report)
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


def _row(plan: PhotoPlan, stage: str, what: str, outcome: Outcome, metrics: str = "") -> Row:
    return Row(
        plan.photo_id,
        stage,
        what,
        "computed" if outcome.computed else "cached",
        outcome.seconds,
        metrics,
    )


def _run_photo(ctx: StageContext, plan: PhotoPlan, options: RunOptions, report: RunReport) -> None:
    store, pid = ctx.store, plan.photo_id
    label = pid
    align = align_stage.run(
        ctx, plan.path, plan.landmarks, plan.face, plan.align_config, plan.resolution
    )
    store.write_ref(pid, "align", align.material)
    for note in align.result.manifest.get("info", {}).get("warnings", []):
        ctx.display.warn(f"photo {pid}: {note}")
    faces = align_stage.faces(align.result)
    report.rows.append(_row(plan, "align", f"{len(faces)} face(s)", align))
    if options.only == "align":
        return

    inverts: list[Result] = []
    for k, record in enumerate(faces):
        face_label = f"{label} face {record['index']}" if len(faces) > 1 else label
        outcome = invert_stage.run(
            ctx, align.result, k, plan.project_config, plan.tune_config, face_label
        )
        store.write_ref(pid, f"invert-face{k}", outcome.material)
        m = outcome.result.metrics
        report.rows.append(
            _row(plan, "invert", f"face {record['index']}", outcome, describe_inversion(m))
        )
        inverts.append(outcome.result)
    if options.only == "invert":
        return

    edits_done: dict[str, dict[int, Result]] = {}
    outputs: list[Path] = []
    for edit in plan.edits:
        results: dict[int, Result] = {}
        for k in edit.face_indices(faces):
            record = faces[k]
            start = edits_done[edit.start].get(k) if edit.start else None
            key = edit_stage.material(
                inverts[k].key,
                start.key if start is not None else None,
                k,
                edit.drag_config,
                edit.key_params,
                edit.mask_digest(store),
            )
            what = edit.name + _face_suffix(record, faces)
            outcome = edit_stage.run(
                ctx,
                key,
                inverts[k],
                start,
                lambda record=record, edit=edit: edit.resolve(record),
                edit.drag_config,
                f"{label} {what}",
            )
            store.write_ref(pid, f"edit-{edit.name}-face{k}", key)
            metrics = _edit_metrics(outcome.result.metrics)
            report.rows.append(_row(plan, "edit", what, outcome, metrics))
            results[k] = outcome.result
        edits_done[edit.name] = results
        if options.only == "edit":
            continue
        ks = sorted(results)
        outcome = composite_stage.run(
            ctx,
            plan.path,
            align.result,
            ks,
            [inverts[k] for k in ks],
            [results[k] for k in ks],
            edit.composite_config,
        )
        store.write_ref(pid, f"composite-{edit.name}", outcome.material)
        touched = 100 * outcome.result.metrics.get("touched_fraction", 0)
        report.rows.append(_row(plan, "composite", edit.name, outcome, f"touched {touched:.1f}%"))
        picked = [(faces[k], results[k]) for k in ks]
        outputs += _materialise(options.out / pid, edit.name, outcome.result, picked, len(faces))
    report.outputs[pid] = outputs


def _face_suffix(record: dict[str, Any], faces: list[dict[str, Any]]) -> str:
    return f" (face {record['index']})" if len(faces) > 1 else ""


def _edit_metrics(m: dict[str, Any]) -> str:
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
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    shutil.copyfile(source, tmp)
    os.replace(tmp, target)
    return target


def _materialise(
    folder: Path,
    name: str,
    composite: Result,
    edits: list[tuple[dict[str, Any], Result]],
    face_count: int,
) -> list[Path]:
    """Copy one edit's user-facing files from the store into ``folder``."""
    output = composite_stage.output_file(composite)
    digest = composite.manifest["files"][output.name]["sha256"]
    written = [_copy_if_changed(output, folder / f"{name}{output.suffix}", digest)]
    for record, edit in edits:
        suffix = f"_face{record['index']}" if face_count > 1 else ""
        files = edit.manifest["files"]
        for stored, shown in (
            ("before.png", f"{name}{suffix}_before.png"),
            ("edited.png", f"{name}{suffix}_after.png"),
            ("trajectory.gif", f"{name}{suffix}_trajectory.gif"),
        ):
            target = folder / shown
            written.append(_copy_if_changed(edit.file(stored), target, files[stored]["sha256"]))
    return written
