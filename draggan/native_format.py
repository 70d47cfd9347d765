"""dragpipe's own generator format: ``NAME.safetensors`` (tensors) + ``NAME.json`` (config).

``NAME.safetensors`` holds every parameter and buffer under NVIDIA's names, bit for bit, and
its header metadata carries the format name, format version, the dragpipe version and the
``GeneratorConfig`` as JSON, so it loads on its own with no pickle at all. ``NAME.json`` is
the same description for people and other tools, plus the weights file's name and SHA-256;
either file can be given to ``load_native`` / ``draggan.load_generator``. Both are written
through ``draggan.atomic_write``: a crash never leaves a half-written file under the final
name.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from draggan.atomic_write import atomic_write, write_bytes_atomic
from draggan.building import build_generator
from draggan.config import GeneratorConfig
from draggan.digests import file_digest as _sha256
from draggan.errors import CheckpointError
from draggan.generator import Generator
from draggan.safe_unpickle import open_checkpoint
from draggan.version import __version__

FORMAT_NAME = "dragpipe-generator"
FORMAT_VERSION = 1


def native_paths(path: str | os.PathLike[str]) -> tuple[Path, Path]:
    """(weights ``.safetensors``, config ``.json``) for a path naming either one.

    A path without a suffix gets ``.safetensors``; any other suffix is refused.
    """
    p = Path(path)
    if p.suffix == "":
        p = p.with_name(p.name + ".safetensors")
    if p.suffix not in (".safetensors", ".json"):
        raise CheckpointError(
            f"{path}: dragpipe generators are saved as NAME.safetensors + NAME.json; "
            "give a path ending in .safetensors"
        )
    return p.with_suffix(".safetensors"), p.with_suffix(".json")


def _describe(config: GeneratorConfig) -> dict[str, Any]:
    return {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "dragpipe_version": __version__,
        "config": config.to_dict(),
    }


def save_generator(G: Generator, path: str | os.PathLike[str]) -> tuple[Path, Path]:
    """Write ``G`` as ``NAME.safetensors`` + ``NAME.json`` atomically; returns both paths."""
    weights, descriptor = native_paths(path)
    if not weights.parent.is_dir():
        raise CheckpointError(f"{path}: folder {weights.parent} does not exist; create it first")
    description = _describe(G.config)
    metadata = {k: json.dumps(v) for k, v in description.items()}
    tensors = {
        name: t.detach().to("cpu", copy=True).contiguous() for name, t in G.state_dict().items()
    }
    try:
        with atomic_write(weights) as tmp:
            save_file(tensors, str(tmp), metadata=metadata)
            description["weights"] = weights.name
            description["weights_sha256"] = _sha256(tmp)
        text = json.dumps(description, indent=2) + "\n"
        write_bytes_atomic(descriptor, text.encode("utf-8"))
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot write the generator ({exc})") from None
    return weights, descriptor


def _config_from(description: Any, source: str) -> GeneratorConfig:
    if not isinstance(description, dict) or description.get("format") != FORMAT_NAME:
        raise CheckpointError(f"{source}: not a dragpipe generator file (no '{FORMAT_NAME}' tag)")
    version = description.get("format_version")
    if version != FORMAT_VERSION:
        raise CheckpointError(
            f"{source}: dragpipe generator format version {version!r}, this dragpipe "
            f"({__version__}) reads version {FORMAT_VERSION}; upgrade dragpipe"
        )
    config = description.get("config")
    if not isinstance(config, dict):
        raise CheckpointError(f"{source}: the generator configuration is missing")
    try:
        return GeneratorConfig.from_dict(config)
    except (ValueError, TypeError) as exc:
        writer = description.get("dragpipe_version", "an unknown version")
        raise CheckpointError(
            f"{source}: bad generator configuration ({exc}); written by dragpipe {writer}, "
            f"read by {__version__}"
        ) from None


def read_native_header(path: str | os.PathLike[str]) -> tuple[GeneratorConfig, dict[str, Any]]:
    """Config and the raw description from a ``.safetensors`` file's header (no tensors read)."""
    source = str(path)
    try:
        with safe_open(source, framework="pt") as f:
            metadata = f.metadata() or {}
    except FileNotFoundError:
        raise CheckpointError(f"{source}: no such file; check the path") from None
    except Exception as exc:  # SafetensorError and friends: a corrupt or truncated file
        raise CheckpointError(
            f"{source}: corrupt or truncated safetensors file ({' '.join(str(exc).split())})"
        ) from None
    try:
        description = {k: json.loads(v) for k, v in metadata.items()}
    except json.JSONDecodeError:
        raise CheckpointError(f"{source}: unreadable dragpipe metadata in the header") from None
    return _config_from(description, source), description


def _read_tensors(path: str) -> dict[str, torch.Tensor]:
    try:
        with safe_open(path, framework="pt") as f:
            return {name: f.get_tensor(name) for name in f.keys()}  # noqa: SIM118
    except Exception as exc:
        raise CheckpointError(
            f"{path}: corrupt or truncated safetensors file ({' '.join(str(exc).split())})"
        ) from None


def _read_descriptor(path: Path) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as f:
            description = json.load(f)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such file; check the path") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path}: unreadable JSON ({exc})") from None
    if not isinstance(description, dict):
        raise CheckpointError(f"{path}: not a dragpipe generator description")
    return description


def load_native_state(
    path: str | os.PathLike[str],
) -> tuple[GeneratorConfig, dict[str, torch.Tensor], dict[str, Any]]:
    """(config, tensors by NVIDIA name, description) from either file of the pair."""
    p = Path(path)
    with open_checkpoint(p) as f:
        is_json = f.read(1) == b"{"
    if is_json:
        description = _read_descriptor(p)
        config = _config_from(description, str(p))
        name = description.get("weights")
        if not isinstance(name, str) or Path(name).name != name or not name:
            raise CheckpointError(f"{p}: 'weights' must name a file next to it, got {name!r}")
        weights = p.with_name(name)
        if not weights.is_file():
            raise CheckpointError(f"{p}: its weights file {weights} is missing")
        sha = description.get("weights_sha256")
        if sha is not None and sha != _sha256(weights):
            raise CheckpointError(
                f"{p}: {weights.name} does not match the SHA-256 recorded here (changed or "
                "incomplete); save the generator again"
            )
        header_config, _ = read_native_header(weights)
        if header_config != config:
            raise CheckpointError(
                f"{p}: its configuration differs from the one inside {weights.name}; "
                "save the generator again"
            )
    else:
        weights = p
        config, description = read_native_header(weights)
    return config, _read_tensors(str(weights)), description


def load_native(path: str | os.PathLike[str]) -> Generator:
    """Load a generator saved by ``save_generator`` (either file of the pair), bit-exact."""
    config, state, _ = load_native_state(path)
    return build_generator(config, state, str(path))
