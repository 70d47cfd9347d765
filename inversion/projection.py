"""Stage 1 of PTI: project an image into W (or W+) of a StyleGAN2 generator.

NVIDIA's projector as PTI runs it: start at w_avg, optimise w and the per-layer noise maps
with Adam under the ``schedule`` learning rate and latent noise, loss = LPIPS at
``lpips_size`` + noise regularisation; the noise maps are renormalised after each step and
discarded at the end (the pivot is rendered with the generator's own constant noise later).
The synthesis runs in float32 in every block on every device (PTI's ``force_fp32=True``).
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import numpy as np
import torch

from draggan.digests import module_digest, tensor_digest
from draggan.loop_state import adam_tensors, load_adam, offered
from inversion.checks import check_target, generator_device
from inversion.config import ProjectConfig
from inversion.errors import InversionError, ResumeMismatch
from inversion.perceptual import Perceptual, resize_for_loss
from inversion.regularizers import noise_regularization, renormalize_noise
from inversion.schedule import latent_noise_scale, learning_rate
from inversion.state import Progress, ProjectState, make_adam

NOISE_BUFFER = "noise_const"


@torch.no_grad()
def w_statistics(G: torch.nn.Module, num_samples: int, seed: int) -> tuple[torch.Tensor, float]:
    """Mean w [1, 1, w_dim] and the scalar std of ``num_samples`` mapped z samples.

    z is drawn as upstream does (numpy ``RandomState(seed).randn``, float64, then float32).
    """
    z = np.random.RandomState(seed).randn(num_samples, G.z_dim)
    z = torch.from_numpy(z).to(generator_device(G), torch.float32)  # [S, z_dim]
    w = G.mapping(z, None)[:, :1, :].double()  # [S, 1, w_dim]
    w_avg = w.mean(dim=0, keepdim=True)  # [1, 1, w_dim]
    w_std = float(((w - w_avg).square().sum() / num_samples).sqrt())
    return w_avg.float(), w_std


def project(
    G: torch.nn.Module,
    target: torch.Tensor,  # [1, 3, R, R] float in [-1, 1], R = G.img_resolution
    config: ProjectConfig | None = None,
    callback: Callable[[Progress], None] | None = None,
    resume: ProjectState | None = None,
) -> torch.Tensor:
    """Find the latent whose image best matches ``target``; returns ws [1, num_ws, w_dim].

    ``G`` is not modified (a private copy holds the noise maps being optimised). The noise
    maps found are discarded, as in PTI: render the result with ``noise_mode='const'`` (G's
    own noise). In W mode all ``num_ws`` rows of the result are equal.

    ``callback`` receives a ``Progress`` after every step; it may stop the run by raising
    (the exception propagates). ``resume``: a ``ProjectState`` from ``Progress.state()`` of
    an earlier run with the same G, target and config; the result is then identical to an
    uninterrupted run. Raises ``PerceptualWeightsMissing`` before any work when the LPIPS
    backbone weights are not on disk, ``ResumeMismatch`` for a state of another run.
    """
    config = config or ProjectConfig()
    perceptual = Perceptual(config.lpips_net, config.perceptual_backbone, generator_device(G))
    target = check_target(G, target)
    device = target.device
    digests = {
        "config": config.to_dict(),
        "target_digest": tensor_digest([target]),
        "generator_digest": module_digest(G),
    }
    if resume is not None:
        resume.check_matches(**digests)

    G = copy.deepcopy(G).eval().requires_grad_(False)
    noise = {n: b for n, b in G.named_buffers() if n.rsplit(".", 1)[-1] == NOISE_BUFFER}
    rng = torch.Generator(device=device)
    rng.manual_seed(config.seed)

    with torch.no_grad():
        target_feats = perceptual.features(resize_for_loss(target, config.lpips_size))
    if resume is None:
        w_avg, w_std = w_statistics(G, config.w_avg_samples, config.w_avg_seed)
        rows = G.num_ws if config.w_plus else 1
        w_opt = w_avg.repeat(1, rows, 1)  # [1, rows, w_dim]
        with torch.no_grad():
            for buf in noise.values():
                buf.copy_(torch.randn(buf.shape, generator=rng, device=device, dtype=buf.dtype))
        start = 0
    else:
        w_opt, w_std, start = resume.w_opt.to(device), resume.w_std, resume.step
        _load_noise(noise, resume.noise)
        rng.set_state(resume.rng)
    w_opt = w_opt.detach().clone().requires_grad_(True)
    for buf in noise.values():
        buf.requires_grad_(True)
    # lr is set every step by the schedule.
    optimizer = make_adam([w_opt, *noise.values()], lr=0.0, betas=(0.9, 0.999))
    if resume is not None:
        load_adam(optimizer, resume.optimizer, ResumeMismatch)

    def snapshot(step: int) -> ProjectState:
        return ProjectState(
            step=step,
            w_opt=w_opt.detach(),
            noise={n: b.detach() for n, b in noise.items()},
            optimizer=adam_tensors(optimizer),
            rng=rng.get_state(),
            w_std=w_std,
            **digests,
        )

    w_noise = torch.empty_like(w_opt)
    for step in range(start, config.num_steps):
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(config, step)
        scale = latent_noise_scale(config, step, w_std)
        torch.randn(w_noise.shape, generator=rng, device=device, out=w_noise)
        ws = (w_opt + w_noise * scale).repeat(1, G.num_ws // w_opt.shape[1], 1)
        # float32 in every block, as PTI (danielroich/PTI da94d59,
        # training/projectors/w_projector.py: force_fp32=True), whatever num_fp16_res says.
        # Each layer's modulation (fused as NVIDIA's eval default and PTI, or unfused: the
        # same maths, no weight-gradient convolution with frozen weights) is the generator's
        # autotuner's; the form's effect on the result is 30-500x below the spread of PTI's
        # own noise (bench/projection_modconv.py, figures in BENCHMARKS.md).
        image = G.synthesis(ws, noise_mode="const", force_fp32=True)  # [1, 3, R, R]
        dist = perceptual.distance(
            target_feats, perceptual.features(resize_for_loss(image, config.lpips_size))
        ).sum()
        reg = noise_regularization(noise.values())
        loss = dist + reg * config.regularize_noise_weight

        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        renormalize_noise(noise.values())

        if callback is not None:
            losses = {"lpips": dist.item(), "noise_reg": reg.item(), "loss": loss.item()}
            with offered(lambda s=step + 1: snapshot(s), InversionError) as state:
                callback(Progress("project", step + 1, config.num_steps, losses, state))

    return w_opt.detach().repeat(1, G.num_ws // w_opt.shape[1], 1).clone()


def _load_noise(noise: dict[str, torch.Tensor], saved: dict[str, torch.Tensor]) -> None:
    if sorted(noise) != sorted(saved):
        raise ResumeMismatch(
            "projection resume state has other noise buffers than this generator: "
            "start the run afresh"
        )
    with torch.no_grad():
        for name, buf in noise.items():
            buf.copy_(saved[name])
