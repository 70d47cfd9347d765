"""Content digests of tensors, modules and files: what ties a loop state or an export to its run.

Shared by the drag engine's ``DragState`` and inversion's loop states: a state taken from
one run (target, latent, generator, config) must never be resumed against another.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable

import torch


def tensor_digest(tensors: Iterable[torch.Tensor]) -> str:
    """SHA-256 over the shapes, dtypes and bytes of ``tensors`` (in order, any device)."""
    digest = hashlib.sha256()
    for tensor in tensors:
        t = tensor.detach().to("cpu").contiguous()
        digest.update(f"{tuple(t.shape)}{t.dtype};".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def module_digest(module: torch.nn.Module) -> str:
    """Digest of a module's parameters and buffers, names included."""
    digest = hashlib.sha256()
    for name, tensor in list(module.named_parameters()) + list(module.named_buffers()):
        digest.update(name.encode())
        digest.update(tensor_digest([tensor]).encode())
    return digest.hexdigest()


def file_digest(path: str | os.PathLike[str]) -> str:
    """SHA-256 of a file's bytes (read in 1 MiB blocks)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
