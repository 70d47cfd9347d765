"""Image conversions and PNG files shared by the stages.

Tensors are generator images, [1, 3, H, W] float in about [-1, 1]; arrays are [H, W, 3]
uint8. PNGs are written through ``draggan.atomic_write`` with no metadata, so the same
pixels always give the same bytes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from draggan.atomic_write import atomic_write


def image_to_tensor(image: np.ndarray) -> torch.Tensor:
    """[H, W, 3] uint8 -> [1, 3, H, W] float32 in [-1, 1]."""
    arr = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float()
    return (arr / 127.5 - 1.0).unsqueeze(0)


def tensor_to_image(tensor: torch.Tensor) -> np.ndarray:
    """[1, 3, H, W] (or [3, H, W]) in about [-1, 1] -> [H, W, 3] uint8 (NVIDIA's rounding)."""
    t = tensor.detach().float().cpu()
    if t.dim() == 4:
        t = t[0]
    t = (t * 127.5 + 128).clamp(0, 255).to(torch.uint8)
    return t.permute(1, 2, 0).numpy()


def save_png(path: Path, image: np.ndarray) -> None:
    """Write an [H, W, 3] uint8 image as PNG (deterministic bytes: no metadata)."""
    with atomic_write(path) as tmp:
        Image.fromarray(image).save(tmp, format="PNG", optimize=False)


def load_png(path: Path) -> np.ndarray:
    """[H, W, 3] uint8 of a PNG (converted to RGB)."""
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB")).copy()
