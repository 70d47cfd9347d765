"""Helpers of the inversion tests: rendered targets, a real photo, interrupting a loop.

The generators come from ``conftest``'s ``tiny_generator`` fixture."""

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from draggan import Generator

PHOTO = Path(__file__).resolve().parent.parent / "examples" / "photos" / "grace_hopper.jpg"


def render(G: Generator, z_seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(ws [1, num_ws, w_dim], image [1, 3, R, R] in [-1, 1])`` of a seeded z."""
    z = torch.randn([1, G.z_dim], generator=torch.Generator().manual_seed(z_seed))
    with torch.no_grad():
        ws = G.mapping(z, None)
        return ws, G.synthesis(ws, noise_mode="const").clamp(-1, 1)


def photo_target(resolution: int) -> torch.Tensor:
    """Grace Hopper's face, square-cropped and resized: [1, 3, R, R] in [-1, 1]."""
    image = Image.open(PHOTO).convert("RGB")
    width, height = image.size
    side = min(width, height)
    left = (width - side) // 2
    image = image.crop((left, 0, left + side, side)).resize((resolution, resolution), Image.LANCZOS)
    pixels = torch.from_numpy(np.array(image)).permute(2, 0, 1)[None].float()
    return pixels / 127.5 - 1


def states_equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    """Same keys and bit-identical tensors."""
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


class StopAt(Exception):
    """Raised by ``stop_at`` callbacks to interrupt a run."""


def stop_at(step: int, saved: dict):
    """A callback that stores the state as safetensors bytes + JSON meta, then interrupts."""
    import json

    from safetensors.torch import load, save

    def callback(progress):
        if progress.step == step:
            tensors, meta = progress.state().to_tensors()
            saved["tensors"] = load(save(tensors))  # through safetensors, as the pipeline
            saved["meta"] = json.loads(json.dumps(meta))
            raise StopAt(step)

    return callback
