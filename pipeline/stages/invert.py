"""Invert stage: PTI (W projection, then pivotal tuning) of one aligned face.

Key: the projection and tuning configs, the face index, the alignment result's key and the
generator file's digest. Result files:

- ``ws.safetensors``: ``ws`` [1, num_ws, w_dim], the pivot latent;
- ``generator.safetensors``: the tuned generator as an fp16 delta against the base
  (``pipeline.stages.tuned``), stored once per face and shared by all its edits;
- ``reconstruction.png``: the tuned generator's rendering of the pivot (noise 'const'),
  rendered from the STORED delta, so a later run's edits start from exactly this;
- metrics: MSE, PSNR, LPIPS and dlib identity distance and similarity of the reconstruction
  (``inversion.InversionMetrics.to_dict()``, with each metric's direction and threshold under
  ``meaning``).

Both loops save their complete state in the pending directory every
``checkpoint_every`` steps; a killed run resumes from there and ends with the same result.
"""

from __future__ import annotations

from typing import Any

import torch

from pipeline.progress import StageProgress
from pipeline.stages.common import (
    Outcome,
    StageContext,
    image_to_tensor,
    load_png,
    run_cached,
    save_png,
    tensor_to_image,
)
from pipeline.stages.generator import base_generator, tuned_generator
from pipeline.stages.tuned import save_tuned
from pipeline.store import KeyMaterial, Pending, Result

VERSION = 1


def material(ctx: StageContext, align_key: str, face: int, project: Any, tune: Any) -> KeyMaterial:
    return KeyMaterial(
        stage="invert",
        version=VERSION,
        params={"project": project.to_dict(), "tune": tune.to_dict(), "face": {"index": face}},
        inputs={"align": align_key, "generator": ctx.generator_digest},
    )


def _checkpointing(pending: Pending, name: str, every: int, bar: StageProgress, total: int):
    """A loop callback: progress display + a state checkpoint every ``every`` steps."""

    def callback(progress: Any) -> None:
        live = {k: float(v) for k, v in progress.losses.items()}
        bar.update(progress.step, total, **live)
        if progress.step % every == 0 and progress.step < progress.num_steps:
            tensors, meta = progress.state().to_tensors()
            pending.save_checkpoint(name, tensors, meta)

    return callback


def run(
    ctx: StageContext, align: Result, face: int, project: Any, tune: Any, label: str
) -> Outcome:
    """The inversion of face ``face`` of an alignment result (cached or computed)."""
    key = material(ctx, align.key, face, project, tune)
    return run_cached(
        ctx, key, lambda pending: _compute(ctx, pending, align, face, project, tune, label)
    )


def _compute(
    ctx: StageContext,
    pending: Pending,
    align: Result,
    face: int,
    project_config: Any,
    tune_config: Any,
    label: str,
) -> tuple[dict[str, Any], dict[str, Any]]:
    from inversion import ProjectState, TuneState, check_weights, evaluate, project, tune

    check_weights(project_config.lpips_net, project_config.perceptual_backbone)
    check_weights(tune_config.lpips_net, tune_config.perceptual_backbone)
    G = base_generator(ctx)
    target = image_to_tensor(load_png(align.file(f"face{face}.png"))).to(ctx.device)  # [1,3,R,R]
    every = max(1, ctx.checkpoint_every)

    ws_file = pending.file("ws.safetensors")
    resumed = []
    if ws_file.is_file():  # projection finished in an earlier, interrupted attempt
        from safetensors.torch import load_file

        ws = load_file(str(ws_file))["ws"].to(ctx.device)
        resumed.append("projection")
    else:
        saved = pending.load_checkpoint("project")
        resume = ProjectState.from_tensors(*saved) if saved else None
        if resume is not None:
            ctx.display.info(f"{label} projection: resuming at step {resume.step}")
        with ctx.display.stage(f"{label} project", project_config.num_steps) as bar:
            callback = _checkpointing(pending, "project", every, bar, project_config.num_steps)
            ws = project(G, target, project_config, callback=callback, resume=resume)
            bar.close()
        pending.write_tensors("ws.safetensors", {"ws": ws})
        pending.drop_checkpoint("project")

    saved = pending.load_checkpoint("tune")
    resume = TuneState.from_tensors(*saved) if saved else None
    if resume is not None:
        ctx.display.info(f"{label} tuning: resuming at step {resume.step}")
    with ctx.display.stage(f"{label} tune", tune_config.max_steps) as bar:
        callback = _checkpointing(pending, "tune", every, bar, tune_config.max_steps)
        tuned = tune(G, ws, target, tune_config, callback=callback, resume=resume)
        bar.close()
    counts = save_tuned(pending.file("generator.safetensors"), tuned, G, ctx.generator_digest)
    del tuned

    # Render and measure from the stored delta: exactly what later runs will load.
    G_tuned = tuned_generator(ctx, pending.key, pending.file("generator.safetensors"))
    with torch.no_grad():
        image = G_tuned.synthesis(ws, noise_mode="const")  # [1, 3, R, R]
    save_png(pending.file("reconstruction.png"), tensor_to_image(image))
    report = evaluate(
        G_tuned,
        ws,
        target,
        lpips_net=tune_config.lpips_net,
        perceptual_backbone=tune_config.perceptual_backbone,
    )
    metrics = report.to_dict()
    pending.drop_checkpoint("tune")
    return metrics, {"resumed": resumed, "delta": counts}
