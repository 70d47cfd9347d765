"""Store costs and the tuned-generator delta's accuracy, measured (prints a table).

- delta: a 256 px generator (channel_base 16384) perturbed the way pivotal tuning changes
  weights, stored as ``pipeline.stages.tuned`` does (fp16 delta vs the base) and as plain
  fp16 weights; reports file sizes and the image difference to the fp32 tuned generator;
- verify: seconds to verify (SHA-256 every file of) a stored result of that size.

Usage: python bench/store.py  (CPU, 2 threads; a few seconds)
"""

from __future__ import annotations

import copy
import tempfile
import time
from pathlib import Path

import torch
from safetensors.torch import save_file

from draggan import Generator, GeneratorConfig
from pipeline.stages.tuned import load_tuned, save_tuned
from pipeline.store import KeyMaterial, Store


def main() -> None:
    torch.set_num_threads(2)
    torch.manual_seed(0)
    config = GeneratorConfig(img_resolution=256, channel_base=16384, z_dim=512, w_dim=512)
    base = Generator(config).eval().requires_grad_(False)
    tuned = copy.deepcopy(base)
    with torch.no_grad():  # about what 350 Adam steps at lr 3e-4 do to each weight
        for p in tuned.parameters():
            p.add_(torch.randn_like(p) * 0.02 * p.abs().mean().clamp_min(1e-3))
    folder = Path(tempfile.mkdtemp())
    counts = save_tuned(folder / "delta.safetensors", tuned, base, "bench")
    half = {k: v.half().contiguous() for k, v in tuned.state_dict().items()}
    save_file(half, str(folder / "fp16.safetensors"))
    full = {k: v.contiguous() for k, v in tuned.state_dict().items()}
    save_file(full, str(folder / "fp32.safetensors"))
    rebuilt = load_tuned(folder / "delta.safetensors", base, "bench")
    as_half = copy.deepcopy(tuned).half().float()
    ws = base.mapping(torch.randn(2, 512), None)
    with torch.no_grad():
        ref, a, b = (G.synthesis(ws) for G in (tuned, rebuilt, as_half))
    print(f"{'storage':<22}{'MB':>8}{'max |diff| (grey levels)':>28}{'uint8 px changed':>20}")
    q = lambda t: (t * 127.5 + 128).clamp(0, 255).to(torch.uint8)  # noqa: E731
    for name, file, image in (
        ("fp32 tuned weights", "fp32", ref),
        ("fp16 delta (ours)", "delta", a),
        ("fp16 weights", "fp16", b),
    ):
        size = (folder / f"{file}.safetensors").stat().st_size / 1e6
        diff = (image - ref).abs().max().item() * 127.5
        changed = (q(image) != q(ref)).float().mean().item()
        print(f"{name:<22}{size:>8.1f}{diff:>28.4f}{changed:>19.3%}")
    print(f"delta stores {counts['stored_tensors']} tensors, skips {counts['unchanged_tensors']}")

    store = Store(folder / "work")
    pending = store.begin(KeyMaterial(stage="invert", version=1))
    (folder / "delta.safetensors").rename(pending.file("generator.safetensors"))
    result = pending.commit()
    start = time.perf_counter()
    store.lookup(KeyMaterial(stage="invert", version=1))
    seconds = time.perf_counter() - start
    size = result.file("generator.safetensors").stat().st_size / 1e6
    print(f"verify a {size:.0f} MB result (SHA-256 of every file): {seconds:.3f} s")


if __name__ == "__main__":
    main()
