"""``drag``: move handle points to target points by optimising the latent (DragGAN).

Each step k, on the ws after k optimisation steps: one synthesis forward with gradients
(up to the feature block in fast mode, the full image in official mode), point tracking on
those features (no gradient), the stop checks, then motion supervision (+ the fixed-region
loss) and one Adam step on the first ``layers`` ws. The last step ends without an update,
so the final ws, handles and image always belong together.

``resume=`` continues from a ``DragState`` that a callback took with ``progress.state()``:
the loop restarts at that state's step and returns exactly what the uninterrupted drag
returns.

The loop (tracking, stop rules, records, callbacks, states) is shared by the backends; what a
step computes is a backend's: ``TorchSteps`` here (PyTorch autograd + ``torch.optim.Adam``),
or ``draggan.onnx.steps.OrtSteps`` (``DragConfig(backend='onnxruntime')``: the exported step
run by ONNX Runtime's training API; it offers no state and no resume).
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Callable
from typing import Any

import torch

from draggan.dragging.config import DragConfig, DragParams
from draggan.dragging.errors import DragInputError, DragResumeError
from draggan.dragging.fast import FastMode
from draggan.dragging.inputs import DragInputs, check_inputs
from draggan.dragging.official import OfficialMode
from draggan.dragging.result import DragProgress, DragResult, DragStep
from draggan.dragging.state import DragState, RunDigests
from draggan.dragging.windows import Box, paste
from draggan.loop_state import adam_tensors, load_adam, offered

# callback(progress) -> True to stop (see DragProgress and draggan.loop_state).
DragCallback = Callable[[DragProgress], Any]


def _modulation(config: DragConfig) -> bool | None:
    """'official' runs NVIDIA's fused (grouped-convolution) modulated conv, as the official
    renderer does for stylegan2-ada-pytorch checkpoints; 'fast' leaves each layer's form to
    the generator's autotuner (the same maths, different rounding)."""
    return True if config.mode == "official" else None


class _Latent:
    """The optimised part of ws: the first ``layers`` ws (or one w shared by them)."""

    def __init__(self, ws0: torch.Tensor, layers: int, w_plus: bool) -> None:
        self.layers = layers
        self.w_plus = w_plus
        self.rest = ws0[:, layers:]  # [1, num_ws - layers, w_dim], fixed
        head = ws0[:, :layers] if w_plus else ws0[:, :1]
        self.param = head.clone().requires_grad_(True)  # [1, layers or 1, w_dim]

    def full(self) -> torch.Tensor:  # [1, num_ws, w_dim]
        head = self.param if self.w_plus else self.param.expand(-1, self.layers, -1)
        return torch.cat([head, self.rest], dim=1)


class _Stall:
    """Ends a drag whose handles have not moved more than ``tolerance`` px for ``steps``."""

    def __init__(self, handles: torch.Tensor, steps: int | None, tolerance: float) -> None:
        self.anchor = handles.clone()
        self.anchor_step = 0
        self.steps = steps
        self.tolerance = tolerance

    def stalled(self, step: int, handles: torch.Tensor) -> bool:
        if (handles - self.anchor).norm(dim=1).max() > self.tolerance:
            self.anchor = handles.clone()
            self.anchor_step = step
            return False
        return self.steps is not None and step - self.anchor_step >= self.steps

    def restore(self, anchor: torch.Tensor, anchor_step: int) -> None:
        self.anchor = anchor.to(torch.float64).clone()
        self.anchor_step = anchor_step


class TorchSteps:
    """The PyTorch backend's step: forward with autograd, ``torch.optim.Adam`` on the latent."""

    def __init__(self, G: Any, inputs: DragInputs, params: DragParams, config: DragConfig) -> None:
        self.G = G
        self.params = params
        self.config = config
        self.latent = _Latent(inputs.ws, config.layers, config.w_plus)
        self.optimizer = torch.optim.Adam([self.latent.param], lr=config.lr)

    def forward(
        self, render: bool, boxes: list[Box] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Feature block output [1, C, h, h] (with gradient; only inside ``boxes`` when
        given, zeros elsewhere) and the image when ``render``."""
        return _synthesise(self.G, self.latent.full(), self.params, self.config, render, boxes)

    def start(self, feat: torch.Tensor) -> None:
        """Step 0's features (the mode keeps what it needs)."""

    def losses(
        self, mode: Any, feat: torch.Tensor, update: bool
    ) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor | None]:
        """(motion, mask, total) at the mode's current handles."""
        loss_motion, loss_mask = mode.losses(feat)
        return loss_motion, loss_mask, _total(loss_motion, loss_mask, self.config.lambda_mask)

    def update(self, loss: torch.Tensor) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward(inputs=[self.latent.param])
        self.optimizer.step()

    def final(self, image: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """(ws [1, num_ws, w_dim], image [1, C, R, R]) of the final latent."""
        final_ws = self.latent.full().detach()
        if image is None:
            with torch.no_grad():
                image = self.G.synthesis(
                    final_ws,
                    noise_mode=self.config.noise_mode,
                    fused_modconv=_modulation(self.config),
                )
        return final_ws, image.detach()


def _synthesise(
    G: Any,
    ws: torch.Tensor,
    params: DragParams,
    config: DragConfig,
    render: bool,
    boxes: list[Box] | None = None,  # feature windows the step reads (None: the whole map)
) -> tuple[torch.Tensor, torch.Tensor | None]:  # features [1, C, h, h], image [1, C, R, R]
    """Features of the feature block (only its ``boxes`` when given, zeros elsewhere), and
    the image when ``render``. The loss reads only the features: the image's own blocks
    (above the feature block, and every ToRGB) run without autograd."""
    fused = _modulation(config)
    size = params.feature_resolution
    synthesis = G.synthesis
    grad_ws = config.layers  # only the optimised ws: the others' layers need no gradients
    if boxes is not None:
        parts = synthesis.features_in(
            ws, size, boxes, noise_mode=config.noise_mode, fused_modconv=fused, grad_ws=grad_ws
        )
        feat = paste(parts, boxes, size)
        if not render:
            return feat, None
        with torch.no_grad():
            return feat, synthesis(ws, noise_mode=config.noise_mode, fused_modconv=fused)
    if render:
        img, feats = synthesis(
            ws, noise_mode=config.noise_mode, return_features=True, fused_modconv=fused,
            grad_until=size, grad_ws=grad_ws,
        )  # fmt: skip
        return feats[params.feature_index], img
    feat = synthesis.features_at(
        ws, size, noise_mode=config.noise_mode, fused_modconv=fused, grad_ws=grad_ws
    )
    return feat, None


def _make_mode(G: Any, config: DragConfig, params: DragParams, inputs: DragInputs) -> Any:
    if config.mode == "fast":
        return FastMode(params, inputs, config)
    return OfficialMode(params, inputs, config, _block_dtype(G, params, inputs.ws.device))


def _block_dtype(G: Any, params: DragParams, device: torch.device) -> torch.dtype:
    """The feature block's compute dtype (float16 for fp16 blocks on CUDA, else float32)."""
    block = getattr(G.synthesis, f"b{params.feature_resolution}", None)
    if block is None or not hasattr(block, "block_dtype"):
        return torch.float32
    return block.block_dtype(device, False)


def _renders(config: DragConfig, mode: Any, step: int) -> bool:
    if mode.renders_every_step or step == config.max_steps:
        return True
    return config.render_every > 0 and step % config.render_every == 0


def drag(
    G: Any,  # draggan Generator
    ws: torch.Tensor,  # [1, num_ws, w_dim] starting latent
    handles: Any,  # [K, 2] (x, y) = (column, row) pixels of the generated image
    targets: Any,  # [K, 2] (x, y)
    mask: Any = None,  # [R, R], 1 = may move, 0 = keep; None: everything may move
    config: DragConfig | None = None,
    callback: DragCallback | None = None,
    resume: DragState | None = None,
    artifacts: str | os.PathLike[str] | None = None,
) -> DragResult:
    """Drag ``handles`` to ``targets`` on the image of ``ws``; see ``DragConfig``.

    Raises ``DragInputError`` (a ``DragganError``) for bad input before any work. The
    generator's weights are not changed and get no gradients. ``callback(progress)`` is
    called after every step's tracking with a ``DragProgress``: ``progress.record`` (the
    step's ``DragStep``), ``progress.image`` (the [1, C, R, R] render when the step made
    one, else None) and ``progress.state()``, which during the call returns the
    ``DragState`` from which step ``record.step`` is recomputed (the latent before that
    step's update, Adam's moments, handles, stall counters, the records before it).
    Returning True ends the drag (``stop_reason='callback'``), raising ends it with that
    exception (the loop protocol of ``draggan.loop_state``).

    ``resume``: such a state of an earlier call with the same G, ws, points, mask and
    config (``DragResumeError``, a ``DragganError``, otherwise, before any step); the drag
    continues there and returns exactly what the uninterrupted drag returns (same device,
    torch build and thread count). Its F0 and reference features are recomputed with one
    forward of the initial ws.

    ``config.backend='onnxruntime'`` runs each step with ONNX Runtime's training API on
    exported artifacts (``draggan.onnx``): ``artifacts`` is the directory they are kept in
    (exported there on first use; reused while their manifest matches this generator and
    drag; None: a temporary directory). That backend offers no ``resume`` and its
    ``progress.state()`` raises ``DragResumeError`` (ONNX Runtime does not expose Adam's
    moments; ``DragConfig.resumable`` says which backends do).
    """
    if config is None:
        config = DragConfig()
    if not isinstance(config, DragConfig):
        raise DragInputError(f"drag: config must be a DragConfig, got {type(config).__name__}")
    if callback is not None and not callable(callback):
        raise DragInputError(f"drag: callback must be callable, got {type(callback).__name__}")
    if resume is not None and not isinstance(resume, DragState):
        raise DragInputError(
            f"drag: resume must be a DragState (from a callback's state()), "
            f"got {type(resume).__name__}"
        )
    inputs = check_inputs(G, ws, handles, targets, mask, config)
    params = config.resolve(int(G.img_resolution), int(G.num_ws))
    mode = _make_mode(G, config, params, inputs)
    if config.backend == "onnxruntime":
        if resume is not None:  # not config.resumable
            raise DragInputError(
                "drag: resume is not available with backend 'onnxruntime' (ONNX Runtime does "
                "not expose Adam's moments): resume with backend 'torch' or start afresh"
            )
        from draggan.onnx.steps import OrtSteps

        with OrtSteps.open(G, inputs, params, config, artifacts) as steps:
            return _run(steps, mode, G, inputs, params, config, callback, None)
    return _run(
        TorchSteps(G, inputs, params, config), mode, G, inputs, params, config, callback, resume
    )


def _run(
    steps: Any,  # TorchSteps or draggan.onnx.steps.OrtSteps
    mode: Any,
    G: Any,
    inputs: DragInputs,
    params: DragParams,
    config: DragConfig,
    callback: DragCallback | None,
    resume: DragState | None,
) -> DragResult:
    """The drag loop, whatever computes the steps."""
    stall = _Stall(inputs.handles, config.stall_steps, config.stall_tolerance)
    digests = RunDigests(G, inputs, config)
    history: list[DragStep] = []
    image = None
    reason = None
    with torch.enable_grad():
        if resume is not None:
            history = _restore(resume, steps, config, mode, stall, digests)
        for step in range(len(history), config.max_steps + 1):
            begin = (mode.get_handles(), stall.anchor.clone(), stall.anchor_step)
            feat, image = steps.forward(_renders(config, mode, step), mode.windows())
            if step == 0:
                steps.start(feat)  # the block's own features [1, C, h, h]
            feat = mode.features(feat)
            if step == 0:
                mode.start(feat)
            current = mode.track(feat)
            if mode.done():
                reason = "converged"
            elif step == config.max_steps:
                reason = "max_steps"
            elif stall.stalled(step, current):
                reason = "stalled"
            loss_motion, loss_mask, loss = steps.losses(mode, feat, update=reason is None)
            record = DragStep(
                step=step,
                handles=tuple((float(x), float(y)) for x, y in current.tolist()),
                distances=tuple((inputs.targets - current).norm(dim=1).tolist()),
                loss_motion=_value(loss_motion),
                loss_mask=_value(loss_mask),
                loss=_value(loss),
                updated=reason is None,
            )
            stop = None
            if callback is not None:
                snapshot = (
                    functools.partial(_snapshot, step, begin, history, steps, digests)
                    if config.resumable
                    else _no_state
                )
                with offered(snapshot, DragResumeError) as state:
                    stop = callback(
                        DragProgress(
                            "drag",
                            step,
                            config.max_steps,
                            {
                                "motion": record.loss_motion,
                                "mask": record.loss_mask,
                                "loss": record.loss,
                            },
                            state,
                            record=record,
                            image=_detached(image),
                        )
                    )
            if stop is True:
                reason = reason or "callback"
                record = dataclasses.replace(record, updated=False)
            history.append(record)
            if reason is not None:
                break
            steps.update(loss)
    final_ws, image = steps.final(image)
    return DragResult(
        ws=final_ws,
        handles=torch.tensor([list(p) for p in history[-1].handles], dtype=torch.float64),
        targets=inputs.targets,
        image=image,
        steps=len(history) - 1,
        converged=reason == "converged",
        stop_reason=reason,
        stop_distance=params.stop_distance,
        history=history,
    )


def _snapshot(
    step: int,
    begin: tuple[torch.Tensor, torch.Tensor, int],  # handles, stall anchor, its step
    history: list[DragStep],  # the records before ``step``
    steps: TorchSteps,
    digests: RunDigests,
) -> DragState:
    """The state from which step ``step`` is recomputed (called before its update)."""
    return DragState(
        step=step,
        latent=steps.latent.param.detach().clone(),
        optimizer=adam_tensors(steps.optimizer),
        handles=begin[0],
        stall_anchor=begin[1],
        stall_anchor_step=begin[2],
        history=list(history),
        config=digests.config,
        inputs_digest=digests.inputs,
        generator_digest=digests.generator,
    )


def _no_state() -> DragState:
    """``progress.state()`` of a backend that is not ``DragConfig.resumable``."""
    raise DragResumeError(
        "drag: backend 'onnxruntime' offers no loop state (ONNX Runtime does not expose "
        "Adam's moments): use backend 'torch' to checkpoint or resume a drag"
    )


def _restore(
    resume: DragState,
    steps: TorchSteps,
    config: DragConfig,
    mode: Any,
    stall: _Stall,
    digests: RunDigests,
) -> list[DragStep]:
    """Put the loop where ``resume`` left it; returns the records before its step."""
    latent = steps.latent
    digests.check(resume)
    resume.check_shapes(latent.param.shape, int(mode.get_handles().shape[0]), config.max_steps)
    if resume.step == 0:
        return []  # nothing done yet: step 0 starts the drag as usual
    # F0 and the handles' reference features, by step 0's own forward on the initial ws.
    feat, _ = steps.forward(_renders(config, mode, 0), mode.windows())
    mode.start(mode.features(feat))
    del feat
    with torch.no_grad():
        latent.param.copy_(resume.latent.to(latent.param.device, latent.param.dtype))
    load_adam(steps.optimizer, resume.optimizer, DragResumeError)
    mode.set_handles(resume.handles)
    stall.restore(resume.stall_anchor, resume.stall_anchor_step)
    return list(resume.history)


def _total(
    loss_motion: torch.Tensor | None, loss_mask: torch.Tensor | None, lambda_mask: float
) -> torch.Tensor | None:
    """motion + lambda * mask, in the official order of additions."""
    if loss_motion is None and loss_mask is None:
        return None
    if loss_mask is None:
        return loss_motion
    weighted = lambda_mask * loss_mask
    return weighted if loss_motion is None else loss_motion + weighted


def _value(loss: torch.Tensor | float | None) -> float:
    if loss is None:
        return 0.0
    return float(loss.detach()) if isinstance(loss, torch.Tensor) else float(loss)


def _detached(image: torch.Tensor | None) -> torch.Tensor | None:
    return None if image is None else image.detach()
