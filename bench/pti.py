"""PTI timings: seconds per projection step and per tuning step, and per face with PTI's
default steps (450 + 350), before and after a change, in one process.

Random weights (seeded), CPU, the 256 px (channel_base 16384), 512 px and 1024 px
(channel_base 32768) configs; LPIPS with a random backbone (same architecture and cost as
the ImageNet one, no weights needed). A step is the time between two consecutive progress
callbacks (forward, loss, backward, Adam step), the first step left out as warm-up.

Variants, alternating in every round so that a loaded machine slows them alike:
- ``after``: ``inversion.project`` / ``inversion.tune`` of this checkout (the generator's
  layers autotuned at first use, into a fresh temporary cache unless --autotune-cache);
- ``before`` (with ``--before DIR``, an earlier dragpipe checkout, e.g. ``git worktree add
  /tmp/dragpipe-before <commit>``): the same calls of that checkout's packages.

The implied PTI wall time is 450 projection steps + 350 tuning steps (PTI's defaults; the
early stop at LPIPS 0.06 can end tuning sooner). ``project_before`` / ``tune_before`` below
are PTI's loops as published (bench/upstream.py runs them on NVIDIA's generator).

    python bench/pti.py [--quick] [--threads 2] [--steps 3] [--rounds 2]
                        [--resolution 256 512 1024] [--before DIR]

``--quick``: the 256 px config only, 2 steps, 1 round.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F

import inversion
from draggan import Generator, GeneratorConfig
from draggan.autotune import Autotuner
from inversion.projection import NOISE_BUFFER, w_statistics
from inversion.regularizers import noise_regularization, renormalize_noise
from inversion.schedule import latent_noise_scale, learning_rate

PTI_PROJECT_STEPS = 450
PTI_TUNE_STEPS = 350


CHANNEL_BASE = {256: 16384, 512: 32768, 1024: 32768}


def build(
    resolution: int, autotuner: Autotuner | None = None
) -> tuple[Generator, torch.Tensor, torch.Tensor]:
    """Seeded generator, a pivot ws [1, num_ws, 512] and a target image [1, 3, R, R]."""
    torch.manual_seed(0)
    config = GeneratorConfig(img_resolution=resolution, channel_base=CHANNEL_BASE[resolution])
    G = Generator(config, autotuner=autotuner).eval()
    with torch.no_grad():
        ws = G.mapping(torch.randn(1, config.z_dim), None)
        target = G.synthesis(G.mapping(torch.randn(1, config.z_dim), None)).clamp(-1, 1)
    return G, ws, target


def plain_lpips(net: str) -> torch.nn.Module:
    """``lpips.LPIPS`` as PTI builds it (random backbone here), contiguous, frozen."""
    import lpips

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        model = lpips.LPIPS(net=net, pnet_rand=True, verbose=False)
    return model.eval().requires_grad_(False)


def intervals(stamps: list[float]) -> list[float]:
    """Step times after the first (warm-up) step."""
    return [b - a for a, b in zip(stamps[1:-1], stamps[2:], strict=True)]


def project_after(G, target, steps: int, inv=inversion) -> list[float]:
    """``inv.project`` (this checkout's ``inversion`` or an earlier one's)."""
    stamps = [time.perf_counter()]
    config = inv.ProjectConfig(num_steps=steps + 1, perceptual_backbone="random")
    inv.project(G, target, config, callback=lambda p: stamps.append(time.perf_counter()))
    return intervals(stamps)


def project_before(G, target, steps: int, lpips_model) -> list[float]:
    """NVIDIA/PTI projector step as published: LPIPS on both images every step."""
    config = inversion.ProjectConfig(num_steps=steps + 1)
    G = copy.deepcopy(G).eval().requires_grad_(False)
    noise = [b for n, b in G.named_buffers() if n.endswith(NOISE_BUFFER)]
    w_avg, w_std = w_statistics(G, config.w_avg_samples, config.w_avg_seed)
    w_opt = w_avg.clone().requires_grad_(True)
    for buf in noise:
        buf.normal_().requires_grad_(True)
    optimizer = torch.optim.Adam([w_opt, *noise], betas=(0.9, 0.999))
    target_small = F.interpolate(target, size=(256, 256), mode="area")
    stamps = [time.perf_counter()]
    for step in range(config.num_steps):
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(config, step)
        w_noise = torch.randn_like(w_opt) * latent_noise_scale(config, step, w_std)
        image = G.synthesis((w_opt + w_noise).repeat(1, G.num_ws, 1), noise_mode="const")
        if image.shape[-1] > 256:
            image = F.interpolate(image, size=(256, 256), mode="area")
        dist = lpips_model(image, target_small).sum()
        loss = dist + noise_regularization(noise) * config.regularize_noise_weight
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        renormalize_noise(noise)
        stamps.append(time.perf_counter())
    return intervals(stamps)


def tune_after(G, ws, target, steps: int, inv=inversion) -> list[float]:
    """``inv.tune`` (this checkout's ``inversion`` or an earlier one's)."""
    stamps = [time.perf_counter()]
    config = inv.TuneConfig(max_steps=steps + 1, lpips_threshold=0, perceptual_backbone="random")
    inv.tune(G, ws, target, config, callback=lambda p: stamps.append(time.perf_counter()))
    return intervals(stamps)


def tune_before(G, ws, target, steps: int, lpips_model) -> list[float]:
    """PTI's single-image coach step as published: MSE + LPIPS on both images every step."""
    G = copy.deepcopy(G).eval().requires_grad_(True)
    optimizer = torch.optim.Adam(G.parameters(), lr=3e-4)
    stamps = [time.perf_counter()]
    for _ in range(steps + 1):
        image = G.synthesis(ws, noise_mode="const")
        lpips_value = lpips_model(image, target).squeeze()
        loss = F.mse_loss(image, target) + lpips_value
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        stamps.append(time.perf_counter())
    return intervals(stamps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--resolution", type=int, nargs="+", default=[256, 512, 1024])
    parser.add_argument("--before", type=Path, default=None, help="an earlier dragpipe checkout")
    parser.add_argument("--autotune-cache", type=Path, default=None)
    args = parser.parse_args()
    if args.quick:
        args.resolution, args.steps, args.rounds = [256], 2, 1
    torch.set_num_threads(args.threads)
    import _checkouts as checkouts
    import _measure as measure

    before = None
    if args.before:
        before = checkouts.Checkout(args.before, checkouts.DRAGPIPE, ["draggan", "inversion"])
    print(f"machine: {measure.machine_line()}")
    print(
        f"{args.steps} steps x {args.rounds} rounds, random weights; median seconds per step"
        + (f"; before: dragpipe at {args.before}" if before else "")
    )
    tuner = Autotuner(args.autotune_cache or Path(tempfile.mkdtemp()) / "autotune.json")
    for resolution in args.resolution:
        G, ws, target = build(resolution, tuner)
        variants = {"after": (G, inversion)}
        if before is not None:
            old = before["draggan"]
            fields = {f: getattr(G.config, f) for f in G.config.__dataclass_fields__}
            G_old = old.Generator(old.GeneratorConfig(**fields)).eval()
            G_old.load_state_dict(G.state_dict())
            variants["before"] = (G_old, before["inversion"])
        start = time.perf_counter()
        project_after(G, target, 1)
        tune_after(G, ws, target, 1)
        tuning = time.perf_counter() - start
        times = {f"{loop} {name}": [] for name in variants for loop in ("project", "tune")}
        with measure.ForeignLoad() as load:
            for _ in range(args.rounds):
                for name, (gen, inv) in variants.items():
                    times[f"project {name}"] += project_after(gen, target, args.steps, inv)
                    times[f"tune {name}"] += tune_after(gen, ws, target, args.steps, inv)
        med = {k: statistics.median(v) for k, v in times.items()}
        print(
            f"\n{resolution} px (channel_base {CHANNEL_BASE[resolution]}); first steps incl. "
            f"autotuning {tuning:.0f} s; {load}"
        )
        for name in variants:
            total = (
                PTI_PROJECT_STEPS * med[f"project {name}"] + PTI_TUNE_STEPS * med[f"tune {name}"]
            )
            print(
                f"  {name:6s} projection {med[f'project {name}']:6.2f} s/step, tuning "
                f"{med[f'tune {name}']:6.2f} s/step; PTI default ({PTI_PROJECT_STEPS} + "
                f"{PTI_TUNE_STEPS} steps) {total:7.0f} s per face = {total / 60:5.1f} min",
                flush=True,
            )


if __name__ == "__main__":
    main()
