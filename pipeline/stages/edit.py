"""Edit stage: one DragGAN edit of one inverted face.

Key: the drag config, the edit's points and mask as written in the spec (plus the digest of
a mask file), the face's geometry (aligned landmarks and transform, ``FaceRecord.geometry``:
the same face is the same work whichever selection found it), the inversion's key and, for
a chained edit (``from:``), the key of the edit it starts from. Result files:

- ``ws.safetensors``: ``ws`` [1, num_ws, w_dim] after the drag (a chained edit starts here);
- ``before.png`` / ``edited.png``: the aligned image the drag started from / ended with;
- ``trajectory.gif``: the drag as an animation (handles red, targets blue);
- ``history.json``: one record per step (handles, losses, distances to the targets);
- ``points.json``: the handles and targets the spec resolved to (aligned pixels);
- ``mask.png``: the resolved drag mask (grey levels, white = may move), when there is one;
- metrics: steps, converged, final distance of each handle to its target (aligned px;
  lower is better, converged when every one is <= ``stop_distance``), with ``meaning``.

The drag saves its complete loop state (``draggan.DragState``) in the pending directory's
``checkpoints/drag.safetensors`` every ``checkpoint_every`` steps, with the trajectory
frames rendered before that step (``checkpoints/drag-frame-<step>.safetensors``, each
written once); a killed run resumes there and ends with the same result files. A checkpoint
that does not fit this drag (another version's, damaged) is reported and ignored.

With ``drag: {backend: onnxruntime}`` the drag runs on an ONNX export of the face's
generator kept in a store artifact directory (``onnx_artifacts``); that backend takes no loop
checkpoints (``DragConfig.resumable``: ONNX Runtime does not expose Adam's state), so a
killed drag restarts, and a drag stopped in the editor is recomputed up to the step it was
stopped at.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from PIL import Image, ImageDraw

from draggan import DragConfig, DragProgress, DragResult, DragState
from draggan.atomic_write import atomic_write
from pipeline.errors import PipelineError
from pipeline.jobs import Info, Metrics, SavedProgress
from pipeline.spec.models import EditSpec, PngMask
from pipeline.stages.align import FaceRecord, faces
from pipeline.stages.context import StageContext
from pipeline.stages.images import load_png, save_png, tensor_to_image
from pipeline.stages.invert import GENERATOR, RECONSTRUCTION, WS
from pipeline.store import KeyMaterial, PartialState, Pending, Ref, Store

VERSION = 2  # 2: the motion loss of XingangPan/DragGAN d0422b1 (F(q + d) live)
MAX_FRAMES = 60  # frames kept in the trajectory animation (evenly subsampled)
FRAME_MS = 80
CHECKPOINT = "drag"  # the loop state; frames are "drag-frame-<step>"
BEFORE, EDITED, MASK, TRAJECTORY = "before.png", "edited.png", "mask.png", "trajectory.gif"
POINTS, HISTORY = "points.json", "history.json"


def points_params(edit: EditSpec) -> dict[str, Any]:
    """The edit's points and mask as written (mask image paths are replaced by a fixed marker: their
    digests are key inputs), the part of an edit's key that comes from the spec."""
    data = edit.model_dump(
        mode="json", by_alias=True, include={"points", "space", "mask"}, warnings=False
    )
    for item in data.get("mask") or []:
        if "png" in item:
            item["png"] = "<file digest in inputs>"
    return data


def mask_files(edit: EditSpec) -> list[Path]:
    """The mask images the edit reads."""
    return [Path(item.png) for item in (edit.mask or []) if isinstance(item, PngMask)]


def mask_digest(edit: EditSpec, store: Store) -> str | None:
    """The digests of the edit's mask images (None without any)."""
    files = mask_files(edit)
    if not files:
        return None
    for path in files:
        if not path.is_file():
            from pipeline.errors import UsageError

            raise UsageError(
                f"edit {edit.name!r} of photo {edit.photo_id!r}: mask image {path} not found"
            )
    return ",".join(store.file_digest(path) for path in files)


def resolve(edit: EditSpec, record: FaceRecord) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(handles [K, 2], targets [K, 2], mask [S, S] float or None), aligned pixels of
    ``record``'s face."""
    from pipeline.spec.masks import resolve_mask
    from pipeline.spec.points import resolve_points

    handles, targets = resolve_points(
        edit, record.aligned_landmarks, record.transform, record.index
    )
    mask = resolve_mask(edit, record.aligned_landmarks, record.transform, face=record.index)
    return np.asarray(handles), np.asarray(targets), mask


@dataclass(frozen=True)
class EditTask:
    """Drag the inverted face ``face`` as ``edit`` says, from the inversion's pivot or from
    the result of the edit it starts from."""

    STAGE: ClassVar[str] = "edit"

    edit: EditSpec
    config: DragConfig
    align: Ref  # the alignment (the face's landmarks and transform)
    face: int  # index into the alignment's selected faces
    geometry: str  # ``FaceRecord.geometry`` of that face: its identity in the key
    invert: Ref  # the face's inversion (tuned generator, pivot)
    start: Ref | None  # the edit this one starts from (``from:``), or None: the pivot

    def material(self, store: Store) -> KeyMaterial:
        inputs: dict[str, Any] = {"invert": self.invert.key, "face": self.geometry}
        if self.start is not None:
            inputs["start"] = self.start.key
        digest = mask_digest(self.edit, store)
        if digest is not None:
            inputs["mask"] = digest
        return KeyMaterial(
            stage=self.STAGE,
            version=VERSION,
            params={"drag": self.config.to_dict(), "points": points_params(self.edit)},
            inputs=inputs,
        )

    def needs(self) -> tuple[Ref, ...]:
        return (self.align, self.invert) + (() if self.start is None else (self.start,))

    def compute(self, ctx: StageContext, pending: Pending, label: str) -> tuple[Metrics, Info]:
        from draggan import DragResumeError, drag

        invert = ctx.store.result(self.invert)
        start = None if self.start is None else ctx.store.result(self.start)
        G = ctx.generators.tuned(invert.key, invert.file(GENERATOR))
        origin = start if start is not None else invert
        ws = origin.tensors(WS)["ws"].to(ctx.device)  # [1, num_ws, w_dim]
        before = load_png(origin.file(EDITED if start is not None else RECONSTRUCTION))
        record = faces(ctx.store.result(self.align))[self.face]
        handles, targets, mask = resolve(self.edit, record)
        handles = np.asarray(handles, dtype=np.float64).reshape(-1, 2)
        targets = np.asarray(targets, dtype=np.float64).reshape(-1, 2)
        pending.write_json(
            POINTS,
            {
                "handles": handles.tolist(),
                "targets": targets.tolist(),
                "mask_fraction": None if mask is None else float(np.mean(mask > 0)),
            },
        )
        mask_t = None
        if mask is not None:
            movable = np.asarray(mask) > 0  # [S, S] bool, True = may move
            save_png(
                pending.file(MASK), np.repeat(movable[:, :, None] * 255, 3, 2).astype(np.uint8)
            )
            mask_t = torch.from_numpy(movable.astype(np.float32))

        every = max(1, ctx.checkpoint_every)
        resume, frames = _resume_point(ctx, pending, before, label)
        total = self.config.max_steps
        resumed = (
            [] if resume is None else [{"loop": "drag", "from_step": resume.step, "of": total}]
        )
        saved_frames = {step for step, _ in frames[1:]}  # drag frames already in checkpoints
        checkpoints = self.config.resumable
        artifacts = onnx_artifacts(ctx, G, self.config, len(handles), label)
        with ctx.display.stage(f"{label} drag", total) as bar:

            def callback(progress: DragProgress) -> None:
                record = progress.record
                live = {"loss": record.loss}
                if record.distances:
                    live["dist"] = max(record.distances)
                bar.update(record.step, total, **live)
                frame = None
                if progress.image is not None:
                    frame = tensor_to_image(progress.image)
                    frames.append((record.step, frame))
                if ctx.watch is not None and ctx.watch(label, record, frame) and record.updated:
                    # Stopped by the watcher: keep the state at this step, so the drag capped
                    # here finishes from it (see ``carry_stopped_drag``); a backend without
                    # loop state leaves none, and the capped drag is computed afresh.
                    if checkpoints:
                        _save_checkpoint(pending, progress.state(), frames, saved_frames)
                    raise DragStopped(label, record.step)
                if checkpoints and record.step % every == 0 and record.step > 0 and record.updated:
                    _save_checkpoint(pending, progress.state(), frames, saved_frames)

            def run_drag(resume: DragState | None) -> DragResult:
                return drag(
                    G,
                    ws,
                    torch.from_numpy(handles).float(),
                    torch.from_numpy(targets).float(),
                    mask=None if mask_t is None else mask_t.to(ctx.device),
                    config=self.config,
                    callback=callback,
                    resume=resume,
                    artifacts=artifacts,
                )

            try:
                result = run_drag(resume)
            except DragResumeError as exc:  # raised before any step
                if resume is None:
                    raise
                ctx.display.warn(f"{label} drag: ignoring its checkpoint ({exc})")
                pending.drop_checkpoint(CHECKPOINT)
                frames[1:] = []
                saved_frames.clear()
                resumed = []
                result = run_drag(None)
            bar.close()
        final = tensor_to_image(result.image)
        pending.write_tensors(WS, {"ws": result.ws})
        save_png(pending.file(BEFORE), before)
        save_png(pending.file(EDITED), final)
        history = [r.to_dict() for r in result.history]
        pending.write_json(HISTORY, history)
        frames.append((int(result.steps), final))
        write_trajectory(pending.file(TRAJECTORY), frames, history, targets)
        final_handles = result.handles.detach().cpu().numpy().astype(np.float64).reshape(-1, 2)
        distances = np.linalg.norm(final_handles - targets, axis=1)
        metrics = {
            "steps": int(result.steps),
            "converged": bool(result.converged),
            "stop_reason": str(result.stop_reason),
            "final_distance": [round(float(d), 3) for d in distances],
            "start_distance": [
                round(float(d), 3) for d in np.linalg.norm(handles - targets, axis=1)
            ],
            "stop_distance": float(result.stop_distance),
            "meaning": {
                "final_distance": "px from each handle to its target in the aligned image "
                "after the drag; lower is better, converged when every one is <= "
                "stop_distance",
                "start_distance": "px from each handle to its target before the drag",
            },
        }
        return metrics, {"final_handles": final_handles.tolist(), "resumed": resumed}

    def saved_progress(self, partial: PartialState) -> SavedProgress | None:
        saved = partial.checkpoints.get(CHECKPOINT)
        state = saved.get("state") if isinstance(saved, dict) else None
        step = state.get("step") if isinstance(state, dict) else None
        if not isinstance(step, int) or isinstance(step, bool) or step <= 0:
            return None
        return SavedProgress("drag", step, self.config.max_steps)


class DragStopped(PipelineError):
    """A drag stopped at step ``step`` by the context's watch (``dragpipe edit``'s Stop).

    Its loop state at that step is saved in the pending result, so the same edit capped at
    ``step`` (``drag: {max_steps: step}``) finishes from there: ``carry_stopped_drag``."""

    def __init__(self, label: str, step: int):
        super().__init__(f"{label} drag: stopped at step {step}")
        self.step = step


def carry_stopped_drag(source: Pending, target: Pending) -> None:
    """Copy the loop state (and the trajectory frames it lists) that a stopped drag left in
    ``source`` into ``target``, the pending result of the same edit with another
    ``max_steps``: computing ``target`` then resumes there (``draggan.drag`` accepts a state
    whose config differs only in ``max_steps``)."""
    saved = source.load_checkpoint(CHECKPOINT)
    if saved is None:
        return
    tensors, meta = saved
    for step in meta.get("frames", []) if isinstance(meta, dict) else []:
        frame = source.load_checkpoint(f"{CHECKPOINT}-frame-{step}")
        if frame is not None:
            target.save_checkpoint(f"{CHECKPOINT}-frame-{step}", *frame)
    target.save_checkpoint(CHECKPOINT, tensors, meta)


def onnx_artifacts(
    ctx: StageContext, G: Any, drag_config: DragConfig, count: int, label: str
) -> Path | None:
    """The store's directory for the ONNX export this drag needs (``backend: onnxruntime``),
    keyed by the generator's digest and the export parameters, exported there (once) when
    missing or stale; None for the torch backend. The first drag exports, later ones (other
    edits of the face, reruns) reuse it. The export is made under the directory's lease
    (``Store.artifact_lease``): edits of one face computed at once (cluster workers) wait
    for one export instead of each making its own and replacing the other's."""
    if drag_config.backend != "onnxruntime":
        return None
    from draggan.onnx import ExportParams
    from draggan.onnx.export import generator_digest, open_artifacts

    params = drag_config.resolve(int(G.img_resolution), int(G.num_ws))
    spec = ExportParams.for_drag(drag_config, params, count)
    directory = ctx.store.artifact_dir("onnx", {"generator": generator_digest(G), **spec.to_dict()})
    lease = ctx.store.artifact_lease(directory, run=ctx.run)
    lease.acquire(
        on_wait=lambda holder: ctx.display.info(
            f"{label} drag: waiting for {holder}, which is making the ONNX export it needs"
        )
    )
    try:
        open_artifacts(
            G, directory, spec, lr=drag_config.lr, window=params.window, report=ctx.display.warn
        )
    finally:
        lease.release()
    return directory


def _save_checkpoint(
    pending: Pending,
    state: DragState,  # at the start of step state.step
    frames: list[tuple[int, np.ndarray]],  # (step, [H, W, 3] uint8); frames[0] is 'before'
    saved: set[int],  # steps whose frame is already saved (updated here)
) -> None:
    """Save the frames rendered before ``state.step`` (each once), then the loop state, which
    lists them: a kill between the two leaves the previous, complete checkpoint."""
    for step, frame in frames[1:]:
        if step < state.step and step not in saved:
            pending.save_checkpoint(
                f"{CHECKPOINT}-frame-{step}", {"frame": torch.from_numpy(frame)}, {"step": step}
            )
            saved.add(step)
    tensors, meta = state.to_tensors()
    listed = sorted(step for step in saved if step < state.step)
    pending.save_checkpoint(CHECKPOINT, tensors, {"state": meta, "frames": listed})


def _resume_point(
    ctx: StageContext, pending: Pending, before: np.ndarray, label: str
) -> tuple[DragState | None, list[tuple[int, np.ndarray]]]:
    """(DragState or None, trajectory frames so far) from the pending directory."""
    from draggan import DragResumeError

    frames = [(0, before)]
    saved = pending.load_checkpoint(CHECKPOINT)
    if saved is None:
        return None, frames
    tensors, meta = saved
    try:
        listed = meta.get("frames") if isinstance(meta, dict) else None
        if not isinstance(listed, list) or not all(
            isinstance(step, int) and not isinstance(step, bool) for step in listed
        ):
            raise DragResumeError(f"its list of trajectory frames is damaged: {listed!r}")
        state = DragState.from_tensors(tensors, meta.get("state"))
        for step in listed:
            frame = pending.load_checkpoint(f"{CHECKPOINT}-frame-{step}")
            image = None if frame is None else frame[0].get("frame")
            if image is None or tuple(image.shape) != before.shape or image.dtype != torch.uint8:
                raise DragResumeError(f"its trajectory frame of step {step} is missing or damaged")
            frames.append((step, image.numpy()))
    except DragResumeError as exc:
        ctx.display.warn(f"{label} drag: ignoring its checkpoint ({exc})")
        pending.drop_checkpoint(CHECKPOINT)
        return None, [(0, before)]
    ctx.display.info(f"{label} drag: resuming at step {state.step}")
    return state, frames


def write_trajectory(
    path: Path,
    frames: list[tuple[int, np.ndarray]],
    history: list[dict[str, Any]],
    targets: np.ndarray,
) -> None:
    """An animated GIF of the drag, with each frame's handles (red) and the targets (blue)."""
    if len(frames) > MAX_FRAMES:
        picks = np.linspace(0, len(frames) - 1, MAX_FRAMES).round().astype(int)
        frames = [frames[i] for i in sorted(set(picks.tolist()))]
    by_step = {int(r.get("step", i + 1)): r.get("handles") for i, r in enumerate(history)}
    first = history[0].get("handles") if history else None
    images = []
    for step, frame in frames:
        image = Image.fromarray(frame)
        draw = ImageDraw.Draw(image)
        radius = max(1.5, image.width / 128)
        handles = by_step.get(step) or (first if step == 0 else None)
        for x, y in np.asarray(targets).reshape(-1, 2):
            draw.ellipse([x - radius, y - radius, x + radius, y + radius], fill=(40, 90, 255))
        if handles:
            for x, y in np.asarray(handles, dtype=float).reshape(-1, 2):
                draw.ellipse([x - radius, y - radius, x + radius, y + radius], fill=(255, 40, 40))
        images.append(image.convert("P", palette=Image.Palette.ADAPTIVE, colors=255))
    durations = [FRAME_MS] * len(images)
    durations[-1] = FRAME_MS * 10  # linger on the result
    with atomic_write(path) as tmp:
        images[0].save(
            tmp, format="GIF", save_all=True, append_images=images[1:], duration=durations, loop=0
        )
