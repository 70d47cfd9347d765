"""Generator CPU speed: forward, backward to ws, backward to ws + parameters, b128 features.

Run: ``python bench/generator.py [--quick] [--sizes 256 512] [--impl fast ref]``.
Batch 1, ``torch.set_num_threads(2)``, random weights (conv_clamp 256 as in official
checkpoints). Every configuration alternates the implementations inside one process so a
loaded machine slows them alike; the table shows median seconds.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

from draggan import Generator, GeneratorConfig
from draggan.autotune import Autotuner

CHANNEL_BASE = {256: 16384, 512: 32768, 1024: 32768}


def timed(fn: Callable[[], None]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def workloads(G: Generator, impl: str) -> dict[str, Callable[[], None]]:
    """name -> one measured call; each backward uses a fixed random projection as the loss."""
    gen = torch.Generator().manual_seed(0)
    ws0 = G.mapping(torch.randn(1, G.z_dim, generator=gen)).detach()
    proj = torch.randn(1, G.img_channels, G.img_resolution, G.img_resolution, generator=gen)
    feat_res = min(128, G.img_resolution)

    def forward() -> None:
        with torch.no_grad():
            G.synthesis(ws0, impl=impl)

    def backward_ws() -> None:
        G.requires_grad_(False)
        ws = ws0.clone().requires_grad_()
        (G.synthesis(ws, impl=impl) * proj).sum().backward()

    def backward_all() -> None:
        G.requires_grad_(True)
        ws = ws0.clone().requires_grad_()
        (G.synthesis(ws, impl=impl) * proj).sum().backward()
        G.zero_grad(set_to_none=True)

    def features_ws() -> None:
        G.requires_grad_(False)
        ws = ws0.clone().requires_grad_()
        G.synthesis.features_at(ws, feat_res, impl=impl).square().mean().backward()

    return {
        "forward": forward,
        "fwd+bwd ws": backward_ws,
        "fwd+bwd ws+params": backward_all,
        f"b{feat_res} fwd+bwd ws": features_ws,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 repeats instead of 5")
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--impl", nargs="+", default=["fast", "ref"], choices=["fast", "ref"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--autotune-cache",
        type=Path,
        default=None,
        help="the generator's autotune cache (default: a fresh temporary one, measured anew)",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    repeats = 2 if args.quick else 5
    tuner = Autotuner(args.autotune_cache or Path(tempfile.mkdtemp()) / "autotune.json")

    print(f"torch {torch.__version__}, {args.threads} threads, batch 1, median of {repeats}")
    header = f"{'config':<8} {'workload':<20}" + "".join(f"{i:>10}" for i in args.impl)
    print(header)
    print("-" * len(header))
    for size in args.sizes:
        torch.manual_seed(0)
        config = GeneratorConfig(
            img_resolution=size, channel_base=CHANNEL_BASE.get(size, 32768), conv_clamp=256
        )
        G = Generator(config, autotuner=tuner).eval()
        loads = {impl: workloads(G, impl) for impl in args.impl}
        names = list(loads[args.impl[0]])
        for name in names:
            times: dict[str, list[float]] = {impl: [] for impl in args.impl}
            for impl in args.impl:
                loads[impl][name]()  # warm-up
            for _ in range(repeats):
                for impl in args.impl:
                    times[impl].append(timed(loads[impl][name]))
            row = "".join(f"{statistics.median(times[i]):>9.2f}s" for i in args.impl)
            print(f"{size:<8} {name:<20}{row}", flush=True)


if __name__ == "__main__":
    main()
