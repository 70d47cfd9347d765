"""PTI timings: seconds per projection step and per tuning step, and the implied wall time.

Random weights (seeded), CPU, the 256 px (channel_base 16384) and 512 px (channel_base 32768)
configs; LPIPS with a random backbone (same architecture and cost as the ImageNet one, no
weights needed). A step is the time between two consecutive progress callbacks (forward,
loss, backward, Adam step), the first step left out as warm-up.

Each loop is timed twice in the same process, alternating rounds so that a loaded machine
slows both alike:
- ``before``: the loop as the published PTI code runs it: ``lpips.LPIPS`` called on both
  images every step (the target's features recomputed), contiguous memory format, torch's
  default per-tensor Adam;
- ``after``: ``inversion.project`` / ``inversion.tune``: target features computed once,
  channels_last LPIPS, fused Adam (the same update rule; parameters may differ in the last
  bit), unfused modulated convolutions in the projection (no weight-gradient convolutions;
  same maths).

The implied PTI wall time is 450 projection steps + 350 tuning steps (PTI's defaults; the
early stop at LPIPS 0.06 can end tuning sooner).

    python bench/pti.py [--quick] [--threads 2] [--steps 3] [--rounds 2]
                              [--resolution 256 512]

``--quick``: the 256 px config only, 2 steps, 1 round.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
import warnings

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import inversion  # noqa: E402
from draggan import Generator, GeneratorConfig  # noqa: E402
from inversion.projection import NOISE_BUFFER, w_statistics  # noqa: E402
from inversion.regularizers import noise_regularization, renormalize_noise  # noqa: E402
from inversion.schedule import latent_noise_scale, learning_rate  # noqa: E402

PTI_PROJECT_STEPS = 450
PTI_TUNE_STEPS = 350


def build(resolution: int) -> tuple[Generator, torch.Tensor, torch.Tensor]:
    """Seeded generator, a pivot ws [1, num_ws, 512] and a target image [1, 3, R, R]."""
    torch.manual_seed(0)
    config = GeneratorConfig(img_resolution=resolution, channel_base=32768 * resolution // 512)
    G = Generator(config).eval()
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


def project_after(G, target, steps: int) -> list[float]:
    stamps = [time.perf_counter()]
    config = inversion.ProjectConfig(num_steps=steps + 1, perceptual_backbone="random")
    inversion.project(G, target, config, callback=lambda p: stamps.append(time.perf_counter()))
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


def tune_after(G, ws, target, steps: int) -> list[float]:
    stamps = [time.perf_counter()]
    config = inversion.TuneConfig(
        max_steps=steps + 1, lpips_threshold=0, perceptual_backbone="random"
    )
    inversion.tune(G, ws, target, config, callback=lambda p: stamps.append(time.perf_counter()))
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
    parser.add_argument("--resolution", type=int, nargs="+", default=[256, 512])
    args = parser.parse_args()
    if args.quick:
        args.resolution, args.steps, args.rounds = [256], 2, 1
    torch.set_num_threads(args.threads)
    print(
        f"torch {torch.__version__}, {args.threads} threads, {args.steps} steps x "
        f"{args.rounds} rounds, random weights; median seconds per step"
    )
    vgg, alex = plain_lpips("vgg"), plain_lpips("alex")
    for resolution in args.resolution:
        G, ws, target = build(resolution)
        times: dict[str, list[float]] = {
            k: [] for k in ("project before", "project after", "tune before", "tune after")
        }
        for _ in range(args.rounds):
            times["project before"] += project_before(G, target, args.steps, vgg)
            times["project after"] += project_after(G, target, args.steps)
            times["tune before"] += tune_before(G, ws, target, args.steps, alex)
            times["tune after"] += tune_after(G, ws, target, args.steps)
        med = {k: statistics.median(v) for k, v in times.items()}
        print(f"\n{resolution} px (channel_base {32768 * resolution // 512}):")
        for name, value in med.items():
            print(f"  {name:15s} {value:7.2f} s/step")
        for label in ("before", "after"):
            total = (
                PTI_PROJECT_STEPS * med[f"project {label}"] + PTI_TUNE_STEPS * med[f"tune {label}"]
            )
            print(
                f"  PTI default ({PTI_PROJECT_STEPS} + {PTI_TUNE_STEPS} steps), {label}: "
                f"{total / 60:6.1f} min"
            )


if __name__ == "__main__":
    main()
