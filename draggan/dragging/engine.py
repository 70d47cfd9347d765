"""``drag``: move handle points to target points by optimising the latent (DragGAN).

Each step k, on the ws after k optimisation steps: one synthesis forward with gradients
(up to the feature block in fast mode, the full image in official mode), point tracking on
those features (no gradient), the stop checks, then motion supervision (+ the fixed-region
loss) and one Adam step on the first ``layers`` ws. The last step ends without an update,
so the final ws, handles and image always belong together.

``resume=`` continues from a ``DragState`` that a callback took with ``state()``: the loop
restarts at that state's step and returns exactly what the uninterrupted drag returns.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any

import torch

from draggan.dragging.config import DragConfig, DragParams
from draggan.dragging.errors import DragInputError
from draggan.dragging.fast import FastMode
from draggan.dragging.inputs import DragInputs, check_inputs
from draggan.dragging.official import OfficialMode
from draggan.dragging.result import DragResult, DragStep
from draggan.dragging.resume import (
    RunDigests,
    accepts_state,
    adam_tensors,
    call_with_state,
    load_adam,
)
from draggan.dragging.state import DragState
from draggan.dragging.windows import Box, paste

# callback(record, image) -> True to stop; image [1, C, R, R] when this step rendered one.
# A callback with a ``state`` keyword also gets ``state=``: a callable -> DragState.
DragCallback = Callable[..., Any]


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
) -> DragResult:
    """Drag ``handles`` to ``targets`` on the image of ``ws``; see ``DragConfig``.

    Raises ``DragInputError`` (a ``DragganError``) for bad input before any work. The
    generator's weights are not changed and get no gradients. ``callback(record, image)``
    is called after every step's tracking (``image``: the [1, C, R, R] render when the step
    made one, else None); returning True ends the drag (``stop_reason='callback'``), raising
    ends it with that exception. A callback that takes a ``state`` keyword is called as
    ``callback(record, image, state=state)``: ``state()``, during the call, returns the
    ``DragState`` from which step ``record.step`` is recomputed (the latent before that
    step's update, Adam's moments, handles, stall counters, the records before it).

    ``resume``: such a state of an earlier call with the same G, ws, points, mask and
    config (``DragResumeError``, a ``DragganError``, otherwise, before any step); the drag
    continues there and returns exactly what the uninterrupted drag returns (same device,
    torch build and thread count). Its F0 and reference features are recomputed with one
    forward of the initial ws.
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
    latent = _Latent(inputs.ws, config.layers, config.w_plus)
    optimizer = torch.optim.Adam([latent.param], lr=config.lr)
    stall = _Stall(inputs.handles, config.stall_steps, config.stall_tolerance)
    digests = RunDigests(G, inputs, config)
    wants_state = callback is not None and accepts_state(callback)
    history: list[DragStep] = []
    image = None
    reason = None
    with torch.enable_grad():
        if resume is not None:
            history = _restore(resume, G, params, config, mode, latent, optimizer, stall, digests)
        for step in range(len(history), config.max_steps + 1):
            begin = (mode.get_handles(), stall.anchor.clone(), stall.anchor_step)
            feat, image = _synthesise(
                G, latent.full(), params, config, _renders(config, mode, step), mode.windows()
            )
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
            loss_motion, loss_mask = mode.losses(feat)
            loss = _total(loss_motion, loss_mask, config.lambda_mask)
            record = DragStep(
                step=step,
                handles=tuple((float(x), float(y)) for x, y in current.tolist()),
                distances=tuple((inputs.targets - current).norm(dim=1).tolist()),
                loss_motion=_value(loss_motion),
                loss_mask=_value(loss_mask),
                loss=_value(loss),
                updated=reason is None,
            )
            if wants_state:
                snapshot = functools.partial(
                    _snapshot, step, begin, history, latent, optimizer, digests
                )
                stop = call_with_state(callback, record, _detached(image), snapshot)
            else:
                stop = callback is not None and callback(record, _detached(image))
            if stop is True:
                reason = reason or "callback"
                record = dataclasses.replace(record, updated=False)
            history.append(record)
            if reason is not None:
                break
            optimizer.zero_grad(set_to_none=True)
            loss.backward(inputs=[latent.param])
            optimizer.step()
    final_ws = latent.full().detach()
    if image is None:
        with torch.no_grad():
            image = G.synthesis(
                final_ws, noise_mode=config.noise_mode, fused_modconv=_modulation(config)
            )
    return DragResult(
        ws=final_ws,
        handles=torch.tensor([list(p) for p in history[-1].handles], dtype=torch.float64),
        targets=inputs.targets,
        image=image.detach(),
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
    latent: _Latent,
    optimizer: torch.optim.Adam,
    digests: RunDigests,
) -> DragState:
    """The state from which step ``step`` is recomputed (called before its update)."""
    return DragState(
        step=step,
        latent=latent.param.detach().clone(),
        optimizer=adam_tensors(optimizer, latent.param),
        handles=begin[0],
        stall_anchor=begin[1],
        stall_anchor_step=begin[2],
        history=list(history),
        config=digests.config,
        inputs_digest=digests.inputs,
        generator_digest=digests.generator,
    )


def _restore(
    resume: DragState,
    G: Any,
    params: DragParams,
    config: DragConfig,
    mode: Any,
    latent: _Latent,
    optimizer: torch.optim.Adam,
    stall: _Stall,
    digests: RunDigests,
) -> list[DragStep]:
    """Put the loop where ``resume`` left it; returns the records before its step."""
    digests.check(resume)
    resume.check_shapes(latent.param.shape, int(mode.get_handles().shape[0]), config.max_steps)
    if resume.step == 0:
        return []  # nothing done yet: step 0 starts the drag as usual
    # F0 and the handles' reference features, by step 0's own forward on the initial ws.
    feat, _ = _synthesise(
        G, latent.full(), params, config, _renders(config, mode, 0), mode.windows()
    )
    mode.start(mode.features(feat))
    del feat
    with torch.no_grad():
        latent.param.copy_(resume.latent.to(latent.param.device, latent.param.dtype))
    load_adam(optimizer, resume.optimizer)
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


def _value(loss: torch.Tensor | None) -> float:
    return 0.0 if loss is None else float(loss.detach())


def _detached(image: torch.Tensor | None) -> torch.Tensor | None:
    return None if image is None else image.detach()
