"""Drag-engine timings: seconds per step of 'fast' and 'official' mode, and peak memory.

Random weights (seeded), CPU, the 512 px config (channel_base 32768, b128 features), one
handle dragged far enough that no run converges. Both modes are timed in the same process,
alternating rounds so that a loaded machine slows both alike; a step is the time between two
consecutive step callbacks (backward + Adam step + the next forward + tracking). Fast mode's
steady state renders no image (render_every=0); its amortised cost with the default
render_every=10 adds a tenth of a full no-grad forward, measured as well. Peak memory: each
mode runs a 2-step drag once more after the process's peak-RSS counter is reset (Linux
``/proc/self/clear_refs``); printed as the peak and its increase over the resident size
just before the drag.

    python bench/drag.py [--quick] [--threads 2] [--steps 4] [--rounds 2] [--resolution 512]

``--quick``: the 256 px config (channel_base 16384), 2 steps, 1 round.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from draggan import DragConfig, Generator, GeneratorConfig, drag
from draggan.autotune import Autotuner


def drag_memory_mb(G: Generator, ws: torch.Tensor, mode: str) -> tuple[float, float]:
    """(peak resident MB during a 2-step drag, resident MB before it). Linux: the peak
    (VmHWM) is reset through /proc/self/clear_refs first, so each mode is measured alone."""
    import _measure  # (bench/ first on sys.path)

    return _measure.peak_rss_mb(lambda: step_times(G, ws, mode, 2))


def build(resolution: int, autotuner: Autotuner | None = None) -> tuple[Generator, torch.Tensor]:
    torch.manual_seed(0)
    config = GeneratorConfig(img_resolution=resolution, channel_base=32768 * resolution // 512)
    G = Generator(config, autotuner=autotuner).eval().requires_grad_(False)
    with torch.no_grad():
        ws = G.mapping(torch.randn(1, config.z_dim))  # [1, num_ws, 512]
    return G, ws


def points(resolution: int) -> tuple[list[list[float]], list[list[float]]]:
    c = resolution / 2
    return [[c, c]], [[c + resolution / 4, c]]


def step_times(G: Generator, ws: torch.Tensor, mode: str, steps: int) -> list[float]:
    """Seconds of each full step after the first (max_steps = steps + 1, no convergence)."""
    stamps: list[float] = []

    def callback(progress):
        stamps.append(time.perf_counter())

    handles, targets = points(G.img_resolution)
    config = DragConfig(mode=mode, max_steps=steps + 1, render_every=0, stall_steps=None)
    drag(G, ws, handles, targets, config=config, callback=callback)
    # Intervals 0->1 ... (steps-1)->steps; the last step (a final render) is left out.
    return [b - a for a, b in zip(stamps[:steps], stamps[1 : steps + 1], strict=True)]


def upstream_step_time(G: Generator, ws: torch.Tensor) -> float:
    """One step as the official renderer spends it: full forward, then a backward that also
    fills every reachable generator weight's gradient (its G's weights require grad and its
    ``loss.backward()`` has no ``inputs``). Tracking and the loss are left out (small)."""
    G.requires_grad_(True)
    try:
        head = ws[:, :6].clone().requires_grad_(True)
        start = time.perf_counter()
        _, feats = G.synthesis(
            torch.cat([head, ws[:, 6:]], 1), return_features=True, fused_modconv=True
        )
        feat = torch.nn.functional.interpolate(feats[5], size=G.img_resolution, mode="bilinear")
        c = G.img_resolution // 2
        feat[:, :, c - 3 : c + 4, c - 3 : c + 4].abs().mean().backward()
        return time.perf_counter() - start
    finally:
        G.requires_grad_(False)
        G.zero_grad(set_to_none=True)


def render_time(G: Generator, ws: torch.Tensor) -> float:
    with torch.no_grad():
        start = time.perf_counter()
        G.synthesis(ws, noise_mode="const", fused_modconv=True)
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="256 px, 2 steps, 1 round")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--autotune-cache",
        type=Path,
        default=None,
        help="the generator's autotune cache (default: a fresh temporary one, measured anew)",
    )
    parser.add_argument("--steps", type=int, default=4, help="timed steps per round")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--resolution", type=int, default=512)
    parser.add_argument("--no-memory", action="store_true", help="skip the memory runs")
    args = parser.parse_args()
    if args.quick:
        args.resolution, args.steps, args.rounds = 256, 2, 1
    torch.set_num_threads(args.threads)
    cache = args.autotune_cache or Path(tempfile.mkdtemp()) / "autotune.json"
    G, ws = build(args.resolution, Autotuner(cache))
    print(
        f"drag bench: {args.resolution} px, channel_base {G.config.channel_base}, "
        f"{args.threads} threads, {args.steps} steps x {args.rounds} rounds per mode"
    )
    times: dict[str, list[float]] = {"fast": [], "official": []}
    for _ in range(args.rounds):
        for mode in ("fast", "official"):
            times[mode] += step_times(G, ws, mode, args.steps)
    render = min(render_time(G, ws) for _ in range(2))
    upstream = min(upstream_step_time(G, ws) for _ in range(2))
    fast = statistics.median(times["fast"])
    official = statistics.median(times["official"])
    amortised = fast + render / DragConfig().render_every
    print(f"fast      {fast:6.2f} s/step (median of {len(times['fast'])}; no render)")
    print(f"fast      {amortised:6.2f} s/step with render_every=10 (full render {render:.2f} s)")
    print(f"official  {official:6.2f} s/step (median of {len(times['official'])})")
    print(
        f"ratio official/fast: {official / fast:.2f} (steady), {official / amortised:.2f} "
        "(fast with renders)"
    )
    print(f"upstream  {upstream:6.2f} s/step (full forward + backward with weight gradients)")
    print(f"ratio upstream/fast: {upstream / amortised:.2f} (fast with renders)")
    if not args.no_memory:
        for mode in ("fast", "official"):
            peak, before = drag_memory_mb(G, ws, mode)
            print(f"{mode:9s} peak RSS {peak:7.0f} MB (+{peak - before:.0f} MB during the drag)")


if __name__ == "__main__":
    main()
