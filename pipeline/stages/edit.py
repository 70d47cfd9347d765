"""Edit stage: one DragGAN edit of one inverted face.

Key: the drag config, the edit's points and mask as written in the spec (plus the digest of
a mask file), the face index, the inversion's key and, for a chained edit (``from:``), the
key of the edit it starts from. Result files:

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
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw

from pipeline.stages.common import (
    Outcome,
    StageContext,
    load_png,
    run_cached,
    save_png,
    tensor_to_image,
)
from pipeline.stages.generator import tuned_generator
from pipeline.store import KeyMaterial, Pending, Result

VERSION = 2  # 2: the motion loss of XingangPan/DragGAN d0422b1 (F(q + d) live)
MAX_FRAMES = 60  # frames kept in the trajectory animation (evenly subsampled)
FRAME_MS = 80
CHECKPOINT = "drag"  # the loop state; frames are "drag-frame-<step>"


def material(
    invert_key: str,
    start_key: str | None,
    face: int,
    drag_config: Any,
    edit_params: dict[str, Any],
    mask_digest: str | None,
) -> KeyMaterial:
    inputs: dict[str, Any] = {"invert": invert_key}
    if start_key is not None:
        inputs["start"] = start_key
    if mask_digest is not None:
        inputs["mask"] = mask_digest
    return KeyMaterial(
        stage="edit",
        version=VERSION,
        params={"drag": drag_config.to_dict(), "points": edit_params, "face": {"index": face}},
        inputs=inputs,
    )


def run(
    ctx: StageContext,
    key: KeyMaterial,
    invert: Result,
    start: Result | None,
    resolve: Any,
    drag_config: Any,
    label: str,
) -> Outcome:
    """``resolve()`` -> (handles [K, 2], targets [K, 2], mask [S, S] or None), aligned px."""
    return run_cached(
        ctx, key, lambda pending: _compute(ctx, pending, invert, start, resolve, drag_config, label)
    )


def _compute(
    ctx: StageContext,
    pending: Pending,
    invert: Result,
    start: Result | None,
    resolve: Any,
    drag_config: Any,
    label: str,
) -> tuple[dict[str, Any], dict[str, Any]]:
    from draggan import DragResumeError, drag

    G = tuned_generator(ctx, invert.key, invert.file("generator.safetensors"))
    origin = start if start is not None else invert
    ws = origin.tensors("ws.safetensors")["ws"].to(ctx.device)  # [1, num_ws, w_dim]
    before = load_png(origin.file("edited.png" if start is not None else "reconstruction.png"))
    handles, targets, mask = resolve()
    handles = np.asarray(handles, dtype=np.float64).reshape(-1, 2)
    targets = np.asarray(targets, dtype=np.float64).reshape(-1, 2)
    pending.write_json(
        "points.json",
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
            pending.file("mask.png"), np.repeat(movable[:, :, None] * 255, 3, 2).astype(np.uint8)
        )
        mask_t = torch.from_numpy(movable.astype(np.float32))

    every = max(1, ctx.checkpoint_every)
    resume, frames = _resume_point(ctx, pending, before, label)
    saved_frames = {step for step, _ in frames[1:]}  # drag frames already in checkpoints
    records: list[dict[str, Any]] = []
    total = getattr(drag_config, "max_steps", None)
    with ctx.display.stage(f"{label} drag", total) as bar:

        def callback(record: Any, image: torch.Tensor | None = None, state: Any = None) -> None:
            data = record.to_dict() if hasattr(record, "to_dict") else dict(record)
            records.append(data)
            distances = data.get("distances") or []
            live = {"loss": float(data.get("loss", 0.0))}
            if distances:
                live["dist"] = float(max(distances))
            step = int(data.get("step", len(records)))
            bar.update(step, total, **live)
            if image is not None:
                frames.append((step, tensor_to_image(image)))
            if state is not None and step % every == 0 and step > 0 and data.get("updated"):
                _save_checkpoint(pending, state(), frames, saved_frames)

        def run_drag(resume: Any) -> Any:
            return drag(
                G,
                ws,
                torch.from_numpy(handles).float(),
                torch.from_numpy(targets).float(),
                mask=None if mask_t is None else mask_t.to(ctx.device),
                config=drag_config,
                callback=callback,
                resume=resume,
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
            result = run_drag(None)
        bar.close()
    final = tensor_to_image(result.image)
    pending.write_tensors("ws.safetensors", {"ws": result.ws})
    save_png(pending.file("before.png"), before)
    save_png(pending.file("edited.png"), final)
    history = [r.to_dict() if hasattr(r, "to_dict") else dict(r) for r in result.history]
    pending.write_json("history.json", history)
    frames.append((int(result.steps), final))
    write_trajectory(pending.file("trajectory.gif"), frames, history, targets)
    final_handles = np.asarray(
        result.handles.detach().cpu() if torch.is_tensor(result.handles) else result.handles,
        dtype=np.float64,
    ).reshape(-1, 2)
    distances = np.linalg.norm(final_handles - targets, axis=1)
    metrics = {
        "steps": int(result.steps),
        "converged": bool(result.converged),
        "stop_reason": str(result.stop_reason),
        "final_distance": [round(float(d), 3) for d in distances],
        "start_distance": [round(float(d), 3) for d in np.linalg.norm(handles - targets, axis=1)],
        "stop_distance": float(result.stop_distance),
        "meaning": {
            "final_distance": "px from each handle to its target in the aligned image after "
            "the drag; lower is better, converged when every one is <= stop_distance",
            "start_distance": "px from each handle to its target before the drag",
        },
    }
    return metrics, {"final_handles": final_handles.tolist()}


def _save_checkpoint(
    pending: Pending,
    state: Any,  # draggan.DragState at the start of step state.step
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
) -> tuple[Any, list[tuple[int, np.ndarray]]]:
    """(DragState or None, trajectory frames so far) from the pending directory."""
    from draggan import DragResumeError, DragState

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
    path: Any,
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
    images[0].save(
        path, format="GIF", save_all=True, append_images=images[1:], duration=durations, loop=0
    )
