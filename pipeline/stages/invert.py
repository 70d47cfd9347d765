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

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar, TypeVar

import torch

from draggan.loop_state import LoopState
from inversion import Progress, ProjectConfig, TuneConfig
from pipeline.jobs import Info, Metrics
from pipeline.progress import StageProgress
from pipeline.stages.align import face_image
from pipeline.stages.context import StageContext
from pipeline.stages.images import image_to_tensor, load_png, save_png, tensor_to_image
from pipeline.stages.tuned import save_tuned
from pipeline.store import KeyMaterial, Pending, Ref, Store

T = TypeVar("T")
# 2: both loops synthesise in float32 (force_fp32), as PTI does: fp16 results from CUDA are
# not served
VERSION = 2
WS, GENERATOR, RECONSTRUCTION = "ws.safetensors", "generator.safetensors", "reconstruction.png"


def _checkpointing(pending: Pending, name: str, every: int, bar: StageProgress, total: int):
    """A loop callback: progress display + a state checkpoint every ``every`` steps."""

    def callback(progress: Progress) -> None:
        live = {k: float(v) for k, v in progress.losses.items()}
        bar.update(progress.step, total, **live)
        if progress.step % every == 0 and progress.step < progress.num_steps:
            tensors, meta = progress.state().to_tensors()
            pending.save_checkpoint(name, tensors, meta)

    return callback


def _resumable(
    ctx: StageContext,
    pending: Pending,
    label: str,
    loop: tuple[str, str, type[LoopState], int],  # checkpoint name, words, state class, steps
    run: Callable[[Callable[[Progress], None], LoopState | None], T],
) -> T:
    """``run(callback, resume)`` of one loop: resumed from its checkpoint when there is one,
    shown as a progress bar, its state saved every ``ctx.checkpoint_every`` steps."""
    name, words, state_class, total = loop
    saved = pending.load_checkpoint(name)
    resume = state_class.from_tensors(*saved) if saved else None
    if resume is not None:
        ctx.display.info(f"{label} {words}: resuming at step {resume.step}")
    with ctx.display.stage(f"{label} {name}", total) as bar:
        every = max(1, ctx.checkpoint_every)
        out = run(_checkpointing(pending, name, every, bar, total), resume)
        bar.close()
    return out


@dataclass(frozen=True)
class InvertTask:
    """Invert face ``face`` of an alignment result into the generator (PTI)."""

    STAGE: ClassVar[str] = "invert"

    align: Ref
    face: int  # index into the alignment's selected faces
    project: ProjectConfig
    tune: TuneConfig
    generator: str  # the base checkpoint's digest

    def material(self, store: Store) -> KeyMaterial:
        return KeyMaterial(
            stage=self.STAGE,
            version=VERSION,
            params={
                "project": self.project.to_dict(),
                "tune": self.tune.to_dict(),
                "face": {"index": self.face},
            },
            inputs={"align": self.align.key, "generator": self.generator},
        )

    def needs(self) -> tuple[Ref, ...]:
        return (self.align,)

    def compute(self, ctx: StageContext, pending: Pending, label: str) -> tuple[Metrics, Info]:
        from inversion import ProjectState, TuneState, check_weights, evaluate, project, tune

        project_config, tune_config = self.project, self.tune
        check_weights(project_config.lpips_net, project_config.perceptual_backbone)
        check_weights(tune_config.lpips_net, tune_config.perceptual_backbone)
        G = ctx.generators.base()
        align = ctx.store.result(self.align)
        target = image_to_tensor(load_png(align.file(face_image(self.face))))
        target = target.to(ctx.device)  # [1, 3, R, R]
        ws_file = pending.file(WS)
        resumed = []
        if ws_file.is_file():  # projection finished in an earlier, interrupted attempt
            from safetensors.torch import load_file

            ws = load_file(str(ws_file))["ws"].to(ctx.device)
            resumed.append("projection")
        else:
            ws = _resumable(
                ctx,
                pending,
                label,
                ("project", "projection", ProjectState, project_config.num_steps),
                lambda callback, resume: project(
                    G, target, project_config, callback=callback, resume=resume
                ),
            )
            pending.write_tensors(WS, {"ws": ws})
            pending.drop_checkpoint("project")

        tuned = _resumable(
            ctx,
            pending,
            label,
            ("tune", "tuning", TuneState, tune_config.max_steps),
            lambda callback, resume: tune(
                G, ws, target, tune_config, callback=callback, resume=resume
            ),
        )
        counts = save_tuned(pending.file(GENERATOR), tuned, G, ctx.generators.digest)
        del tuned

        # Render and measure from the stored delta: exactly what later runs will load.
        G_tuned = ctx.generators.tuned(pending.key, pending.file(GENERATOR))
        with torch.no_grad():
            image = G_tuned.synthesis(ws, noise_mode="const")  # [1, 3, R, R]
        save_png(pending.file(RECONSTRUCTION), tensor_to_image(image))
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
