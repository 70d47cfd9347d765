"""The ONNX Runtime backend against the PyTorch engine: seconds per drag step, export time,
artifact sizes, peak memory.

Random weights (seeded), CPU, channel_base 32768 at every resolution (b128 features), fast
mode with its defaults (w+ on 6 ws, r1 3 px at 512), one handle dragged a quarter of the
image so no run converges, no image rendered during the drag (render_every=0). A step is
the time between two consecutive step callbacks (torch: backward + Adam + forward +
tracking; ORT: optimizer step + evaluation pass + tracking + training pass), the median of
``--steps`` steps per round, rounds alternating between the backends so a loaded machine
slows both alike. The time to the first callback is the drag's setup (ORT: verifying the
export, creating its sessions) plus step 0's forward and tracking. Export time is one
``export_artifacts`` (mapping, synthesis, the drag step's training artifacts). Peak memory: each backend runs a 2-step drag once more after
the process's peak-RSS counter is reset (Linux ``/proc/self/clear_refs``); printed as the
peak and its increase over the resident size just before the drag (ORT: on an existing
export).

    python bench/onnxruntime.py [--resolutions 256 512] [--threads 2] [--steps 4] [--rounds 2]
"""

from __future__ import annotations

import os
import sys

# This script is named like the onnxruntime package, and Python puts a script's own folder
# first on sys.path: drop bench/ from it before anything imports onnxruntime (draggan.onnx
# does), or `import onnxruntime` would import this file instead of the package.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]

import argparse  # noqa: E402
import importlib.util  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402

from draggan import DragConfig, Generator, GeneratorConfig, drag  # noqa: E402
from draggan.onnx import ExportParams  # noqa: E402
from draggan.onnx.export import export_artifacts  # noqa: E402


def _sibling(name: str):  # bench/NAME.py, imported by path (bench/ is off sys.path here)
    spec = importlib.util.spec_from_file_location(
        f"bench_{name}", Path(__file__).with_name(f"{name}.py")
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


measure = _sibling("_measure")
bench_drag = _sibling("drag")


def build(resolution: int) -> tuple[Generator, torch.Tensor]:
    torch.manual_seed(0)
    G = Generator(GeneratorConfig(img_resolution=resolution, channel_base=32768))
    G = G.eval().requires_grad_(False)
    with torch.no_grad():
        ws = G.mapping(torch.randn(1, G.z_dim))  # [1, num_ws, 512]
    return G, ws


def config(backend: str, steps: int) -> DragConfig:
    return DragConfig(backend=backend, max_steps=steps, render_every=0, stall_steps=None)


def step_seconds(G, ws, backend: str, steps: int, artifacts: Path) -> tuple[float, float]:
    """(median seconds between consecutive step callbacks of a ``steps``-step drag, seconds
    from the call to the first callback: setup + step 0's forward and tracking)."""
    handles, targets = bench_drag.points(int(G.img_resolution))
    started = time.perf_counter()
    stamps: list[float] = []
    drag(
        G,
        ws,
        handles,
        targets,
        config=config(backend, steps),
        artifacts=artifacts,
        callback=lambda progress: stamps.append(time.perf_counter()),
    )
    step = statistics.median(b - a for a, b in zip(stamps, stamps[1:], strict=False))
    return step, stamps[0] - started


def peak_mb(G, ws, backend: str, artifacts: Path) -> tuple[float, float]:
    """(peak resident MB of a 2-step drag, resident MB before it)."""
    return measure.peak_rss_mb(lambda: step_seconds(G, ws, backend, 2, artifacts))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--resolutions", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"threads {args.threads}, {args.steps} steps x {args.rounds} rounds, fast mode")
    for resolution in args.resolutions:
        G, ws = build(resolution)
        with tempfile.TemporaryDirectory(prefix="bench-onnx-") as scratch:
            artifacts = Path(scratch) / "onnx"
            cfg = config("onnxruntime", args.steps)
            spec = ExportParams.for_drag(cfg, cfg.resolve(resolution, G.num_ws), 1)
            started = time.perf_counter()
            manifest = export_artifacts(G, artifacts, spec, lr=cfg.lr)
            export_s = time.perf_counter() - started
            sizes = {name: e["size"] / 2**20 for name, e in manifest["files"].items()}
            times: dict[str, list[float]] = {"torch": [], "onnxruntime": []}
            first: dict[str, list[float]] = {"torch": [], "onnxruntime": []}
            for _ in range(args.rounds):
                for backend in times:
                    step, setup = step_seconds(G, ws, backend, args.steps, artifacts)
                    times[backend].append(step)
                    first[backend].append(setup)
            memory = {b: peak_mb(G, ws, b, artifacts) for b in times}
        torch_s = statistics.median(times["torch"])
        ort_s = statistics.median(times["onnxruntime"])
        print(f"\n{resolution} px ({G.num_ws} ws, b128 features):")
        for backend, seconds in (("torch", torch_s), ("onnxruntime", ort_s)):
            peak, before = memory[backend]
            rounds = ", ".join(f"{t:.3f}" for t in times[backend])
            print(
                f"  {backend:<12} {seconds:6.3f} s/step (rounds {rounds}); to the first "
                f"callback {statistics.median(first[backend]):.1f} s; peak RSS "
                f"{peak:7.0f} MB (+{peak - before:.0f} over {before:.0f})"
            )
        print(f"  ORT / torch  {ort_s / torch_s:.2f}x per step")
        print(f"  export       {export_s:.1f} s, {sum(sizes.values()):.1f} MiB in all:")
        for name, size in sorted(sizes.items()):
            print(f"    {name:<22} {size:8.2f} MiB")


if __name__ == "__main__":
    main()
