"""Projection with the fused vs the unfused modulated convolution, against PTI's own noise.

PTI's projector (danielroich/PTI da94d59, ``training/projectors/w_projector.py``) runs
NVIDIA's synthesis in eval mode, i.e. the fused (grouped) modulated convolution;
``inversion.project`` asks for the unfused form (no weight-gradient convolution, but its
gradient with respect to ws is only about 1e-3 accurate). Both are run here through
``inversion.project`` itself, its synthesis forced to one form. For each seed of
``ProjectConfig.seed`` (the noise-map initialisation and the per-step latent noise: PTI's
own run-to-run randomness) both forms run from the same seed. Printed per seed: the final
LPIPS loss of each form and the distance between their final w; then the spread of the
fused runs across seeds (range and std of the final loss, mean and min distance between
two seeds' final w) and the seconds per step of each form.

Cases: ``demo``: ``examples/demo/generator.safetensors`` (128 px, fitted to one face) and
the bundled photo's face aligned by dragpipe (needs dlib's model files); ``random``: a
seeded random 128 px generator (channel_base 8192) and a target rendered from another of
its latents. LPIPS with a random backbone (no ImageNet weights needed), VGG as PTI or
``--lpips-net alex`` (several times cheaper per step at 128 px).

    python bench/projection_modconv.py [--cases demo random] [--seeds 5] [--steps 450]
                                       [--lpips-net vgg] [--threads 1]
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

import inversion
from draggan import Generator, GeneratorConfig
from draggan.native_format import load_native
from draggan.synthesis import SynthesisNetwork

ROOT = Path(__file__).resolve().parent.parent


def forced(G: Generator, fused: bool) -> Generator:
    """A copy of G whose synthesis ignores the caller's ``fused_modconv`` and uses ``fused``."""

    class Forced(SynthesisNetwork):
        def forward(self, ws, *args, fused_modconv=None, **kwargs):
            return super().forward(ws, *args, fused_modconv=fused, **kwargs)

    import copy

    out = copy.deepcopy(G)
    out.synthesis.__class__ = Forced
    return out


def demo_case() -> tuple[Generator, torch.Tensor]:
    from pipeline.alignment import AlignConfig, align_face, find_faces, select_faces
    from pipeline.photo import load_photo

    G = load_native(ROOT / "examples" / "demo" / "generator.safetensors").eval()
    photo = load_photo(ROOT / "examples" / "photos" / "grace_hopper.jpg")
    face = select_faces(find_faces(photo), "largest")[0]
    image, _ = align_face(photo, face.landmarks, AlignConfig(output_size=G.img_resolution))
    array = np.asarray(image.convert("RGB"), dtype=np.float32) / 127.5 - 1
    return G, torch.from_numpy(array).permute(2, 0, 1)[None]  # [1, 3, 128, 128]


def random_case() -> tuple[Generator, torch.Tensor]:
    torch.manual_seed(0)
    G = Generator(GeneratorConfig(img_resolution=128, channel_base=8192, channel_max=256)).eval()
    with torch.no_grad():
        z = torch.randn(1, G.z_dim, generator=torch.Generator().manual_seed(1))
        target = G.synthesis(G.mapping(z, None)).clamp(-1, 1)  # [1, 3, 128, 128]
    return G, target


def run(G: Generator, target: torch.Tensor, fused: bool, seed: int, steps: int, net: str):
    """(final LPIPS loss, final w [w_dim], seconds per step after the first)."""
    config = inversion.ProjectConfig(
        num_steps=steps, seed=seed, lpips_net=net, perceptual_backbone="random"
    )
    record: dict = {"stamps": []}

    def callback(progress):
        record["stamps"].append(time.perf_counter())
        record["lpips"] = progress.losses["lpips"]

    ws = inversion.project(forced(G, fused), target, config, callback=callback)
    stamps = record["stamps"]
    per_step = (stamps[-1] - stamps[0]) / max(1, len(stamps) - 1)
    return record["lpips"], ws[0, 0].double(), per_step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="+", default=["demo", "random"])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=450)
    parser.add_argument("--lpips-net", default="vgg", choices=["vgg", "alex"])
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    builders = {"demo": demo_case, "random": random_case}
    for name in args.cases:
        G, target = builders[name]()
        print(
            f"case {name}: {G.img_resolution} px, {args.steps} steps, seeds 0-{args.seeds - 1}, "
            f"LPIPS-{args.lpips_net}",
            flush=True,
        )
        results = {True: [], False: []}
        for seed in range(args.seeds):
            for fused in (True, False):  # alternating: a loaded machine slows both alike
                results[fused].append(run(G, target, fused, seed, args.steps, args.lpips_net))
            (lf, wf, _), (lu, wu, _) = results[True][-1], results[False][-1]
            print(
                f"  seed {seed}: loss fused {lf:.6f} unfused {lu:.6f} (diff {lu - lf:+.1e}); "
                f"|w_fused - w_unfused| {float((wf - wu).norm()):.4f}",
                flush=True,
            )
        losses = {k: [r[0] for r in v] for k, v in results.items()}
        diffs = [abs(a - b) for a, b in zip(losses[True], losses[False], strict=True)]
        w_gap = [
            float((a[1] - b[1]).norm()) for a, b in zip(results[True], results[False], strict=True)
        ]
        pairs = [float((a[1] - b[1]).norm()) for a, b in itertools.combinations(results[True], 2)]
        print(
            f"  fused vs unfused, same seed: |loss diff| mean {statistics.mean(diffs):.1e} "
            f"max {max(diffs):.1e}; |w diff| mean {statistics.mean(w_gap):.4f} "
            f"max {max(w_gap):.4f}"
        )
        for fused in (True, False):
            lo = losses[fused]
            print(
                f"  {'fused' if fused else 'unfused':7s} across seeds: loss {min(lo):.5f}-"
                f"{max(lo):.5f} (mean {statistics.mean(lo):.5f}, std {statistics.stdev(lo):.1e})"
                + (
                    f"; |w_s - w_s'| mean {statistics.mean(pairs):.4f} min {min(pairs):.4f}"
                    if fused
                    else ""
                )
                + f"; {statistics.median(r[2] for r in results[fused]):.3f} s/step"
            )
        sys.stdout.flush()


if __name__ == "__main__":
    main()
