"""``load_generator``: any supported checkpoint -> ``Generator``, the reader chosen by content.

Supported: NVIDIA's official PyTorch pickles (stylegan2-ada-pytorch and the stylegan3
repository's StyleGAN2 networks), TensorFlow StyleGAN2 pickles, and dragpipe's own
``.safetensors`` + ``.json`` pair. The file's first bytes decide which reader runs (a
pickle starts with the PROTO opcode, safetensors with a little-endian header length and
``{``, the JSON description with ``{``); the file name and extension are never used.
Pickles are read by ``draggan.safe_unpickle``: nothing from the file is executed.
"""

from __future__ import annotations

import os

import torch

from draggan.building import CheckpointContents, build_generator
from draggan.errors import CheckpointError, DragganError
from draggan.generator import Generator
from draggan.native_format import load_native_state
from draggan.official_pickle import official_contents
from draggan.safe_unpickle import TFNetwork, open_checkpoint, safe_load
from draggan.tf_pickle import tf_contents

PICKLE, SAFETENSORS, JSON, ZIP, UNKNOWN = "pickle", "safetensors", "json", "zip", "unknown"
NATIVE_FORMAT = "dragpipe (safetensors + JSON)"


def sniff_format(path: str | os.PathLike[str]) -> str:
    """'pickle' | 'safetensors' | 'json' | 'zip' | 'unknown', from the first bytes of ``path``."""
    with open_checkpoint(path) as f:
        head = f.read(16)
        size = os.fstat(f.fileno()).st_size
    if not head:
        raise CheckpointError(f"{path}: the file is empty; re-download or re-save it")
    if head[0] == 0x80 and len(head) > 1 and 2 <= head[1] <= 5:
        return PICKLE
    if head[:4] == b"PK\x03\x04":
        return ZIP
    if len(head) >= 9 and head[8:9] == b"{":
        header_len = int.from_bytes(head[:8], "little")
        if 8 + header_len <= size:
            return SAFETENSORS
    if head.lstrip()[:1] == b"{":
        return JSON
    return UNKNOWN


def _is_tf(data: object) -> bool:
    if isinstance(data, TFNetwork):
        return True
    return isinstance(data, tuple) and any(isinstance(n, TFNetwork) for n in data)


def read_checkpoint(path: str | os.PathLike[str]) -> CheckpointContents:
    """Config and tensors of the generator in ``path`` (no network is built or run)."""
    source = str(path)
    kind = sniff_format(path)
    if kind == PICKLE:
        data = safe_load(path)
        try:
            return tf_contents(data, source) if _is_tf(data) else official_contents(data, source)
        except (AttributeError, TypeError, ValueError, KeyError, IndexError) as exc:
            # Well-formed pickle, malformed network structure (hand-made or damaged file).
            detail = " ".join(str(exc).split())[:120]
            raise CheckpointError(
                f"{source}: malformed network data ({type(exc).__name__}: {detail}); "
                "re-download or re-export the checkpoint"
            ) from None
    if kind in (SAFETENSORS, JSON):
        config, state, description = load_native_state(path)
        return CheckpointContents(
            config=config,
            state=state,
            format=NATIVE_FORMAT,
            network="G",
            details={"dragpipe_version": description.get("dragpipe_version", "unknown")},
        )
    if kind == ZIP:
        raise CheckpointError(
            f"{source}: a torch.save archive (.pt/.pth), which has no generator settings; "
            "give an NVIDIA StyleGAN2 .pkl or a dragpipe .safetensors file"
        )
    raise CheckpointError(
        f"{source}: not a StyleGAN2 checkpoint (unrecognised content); give an NVIDIA "
        "StyleGAN2 .pkl (PyTorch or TensorFlow) or a dragpipe .safetensors file"
    )


def load_generator(path: str | os.PathLike[str], device: str | torch.device = "cpu") -> Generator:
    """Load the StyleGAN2 generator in ``path`` onto ``device``.

    Returns a ``Generator`` in eval mode with ``requires_grad`` False on every parameter
    (like NVIDIA's ``G_ema``; call ``G.requires_grad_(True)`` to fine-tune it). Raises
    ``CheckpointError`` (one line, naming the file) for a missing, corrupt, truncated,
    inconsistent or unsupported file, ``UnsafeCheckpointError`` when a pickle asks for
    code outside the allow-list.
    """
    try:
        target = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise DragganError(
            f"device {device!r} is not a torch device; use 'cpu', 'cuda' or 'mps'"
        ) from None
    contents = read_checkpoint(path)
    G = build_generator(contents.config, contents.state, str(path))
    try:
        return G.to(target)
    except (RuntimeError, AssertionError) as exc:  # e.g. CUDA asked for on a CPU-only torch
        message = " ".join(str(exc).split())
        raise DragganError(f"cannot put the generator on {device!r}: {message}") from None
