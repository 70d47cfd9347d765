"""Stage 2 of PTI: pivotal tuning of the generator around a fixed latent.

Adam over all generator parameters so that ``G.synthesis(pivot, noise_mode='const')``
reproduces the target: loss = MSE + LPIPS at full resolution (PTI's weights 1 and 1), at most
``max_steps`` steps, stopping before a step once LPIPS <= ``lpips_threshold``; optionally
PTI's locality regulariser. Every synthesis runs in float32 in every block on every device,
as PTI's coach and regulariser do (danielroich/PTI da94d59, ``training/coaches/
base_coach.py`` and ``criteria/localitly_regulizer.py``: ``force_fp32=True``).
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
import torch.nn.functional as F

from draggan.digests import module_digest, tensor_digest
from draggan.loop_state import adam_tensors, load_adam, offered
from inversion.checks import check_target, check_ws, generator_device
from inversion.config import TuneConfig
from inversion.errors import InversionError, ResumeMismatch
from inversion.perceptual import Perceptual
from inversion.regularizers import locality_latent
from inversion.state import Progress, TuneState, make_adam


def tune(
    G: torch.nn.Module,
    ws: torch.Tensor,  # [1, num_ws, w_dim] pivot, e.g. from ``project``
    target: torch.Tensor,  # [1, 3, R, R] float in [-1, 1], R = G.img_resolution
    config: TuneConfig | None = None,
    callback: Callable[[Progress], None] | None = None,
    resume: TuneState | None = None,
) -> torch.nn.Module:
    """Return a tuned copy of ``G`` that renders ``target`` from ``ws`` (noise_mode 'const').

    ``G`` itself is never modified. The returned generator is in eval mode with
    ``requires_grad`` off on its parameters. ``callback`` receives a ``Progress`` after every
    optimiser step and may stop the run by raising (the exception propagates); ``resume``
    continues from a ``TuneState`` of an earlier run with the same G, pivot, target and
    config, giving the same result as an uninterrupted run. Raises
    ``PerceptualWeightsMissing`` before any work when the LPIPS backbone weights are missing.
    """
    config = config or TuneConfig()
    device = generator_device(G)
    perceptual = Perceptual(config.lpips_net, config.perceptual_backbone, device)
    target = check_target(G, target)
    pivot = check_ws(G, ws)
    digests = {
        "config": config.to_dict(),
        "target_digest": tensor_digest([target]),
        "pivot_digest": tensor_digest([pivot]),
        "generator_digest": module_digest(G),
    }
    if resume is not None:
        resume.check_matches(**digests)

    tuned = copy.deepcopy(G).eval()
    params = dict(tuned.named_parameters())
    rng = torch.Generator(device=device)
    rng.manual_seed(config.seed)
    start = 0
    if resume is not None:
        _load_params(params, resume.params)
        rng.set_state(resume.rng)
        start = resume.step
    tuned.requires_grad_(True)
    optimizer = make_adam(params.values(), lr=config.learning_rate)
    if resume is not None:
        load_adam(optimizer, resume.optimizer, ResumeMismatch)

    def snapshot(step: int) -> TuneState:
        return TuneState(
            step=step,
            params={n: p.detach() for n, p in params.items()},
            optimizer=adam_tensors(optimizer),
            rng=rng.get_state(),
            **digests,
        )

    with torch.no_grad():
        target_feats = perceptual.features(target)
    for step in range(start, config.max_steps):
        image = tuned.synthesis(pivot, noise_mode="const", force_fp32=True)  # [1, 3, R, R]
        mse = F.mse_loss(image, target)
        lpips = perceptual.distance(target_feats, perceptual.features(image)).squeeze()
        if lpips.item() <= config.lpips_threshold:
            break
        loss = mse * config.mse_weight + lpips * config.lpips_weight
        losses = {"mse": mse.item(), "lpips": lpips.item()}
        if config.locality_regularization:
            locality = _locality_loss(G, tuned, pivot, perceptual, config, rng)
            loss = loss + locality
            losses["locality"] = locality.item()
        losses["loss"] = loss.item()

        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

        if callback is not None:
            with offered(lambda s=step + 1: snapshot(s), InversionError) as state:
                callback(Progress("tune", step + 1, config.max_steps, losses, state))

    return tuned.requires_grad_(False)


def _locality_loss(
    original: torch.nn.Module,
    tuned: torch.nn.Module,
    pivot: torch.Tensor,  # [1, num_ws, w_dim]
    perceptual: Perceptual,
    config: TuneConfig,
    rng: torch.Generator,
) -> torch.Tensor:
    """PTI's locality term: a w ``locality_alpha`` from the pivot renders as in ``original``."""
    z = torch.randn([1, original.z_dim], generator=rng, device=pivot.device)  # [1, z_dim]
    with torch.no_grad():
        sample = original.mapping(z, None, truncation_psi=config.locality_psi)
        w = locality_latent(pivot, sample, config.locality_alpha)  # [1, num_ws, w_dim]
        old_image = original.synthesis(w, noise_mode="none", force_fp32=True)
        old_feats = perceptual.features(old_image)
    new_image = tuned.synthesis(w, noise_mode="none", force_fp32=True)
    mse = F.mse_loss(old_image, new_image)
    lpips = perceptual.distance(old_feats, perceptual.features(new_image)).mean()
    return mse * config.locality_mse_weight + lpips * config.locality_lpips_weight


def _load_params(params: dict[str, torch.nn.Parameter], saved: dict[str, torch.Tensor]) -> None:
    if sorted(params) != sorted(saved):
        raise ResumeMismatch(
            "tuning resume state has other parameters than this generator: start the run afresh"
        )
    with torch.no_grad():
        for name, param in params.items():
            if param.shape != saved[name].shape:
                raise ResumeMismatch(
                    f"tuning resume state has {name} of shape {list(saved[name].shape)}, "
                    f"the generator {list(param.shape)}: start the run afresh"
                )
            param.copy_(saved[name])
