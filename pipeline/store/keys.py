"""Stage keys: the identity of a stage result, as a hash of everything that changes it.

A key is the SHA-256 of the canonical JSON of the key *material*: the stage name, the
stage's version (bumped when its code changes results), the package version, the
parameters that change the result and the digests/keys of the inputs (photo bytes,
generator file, upstream results). Device, paths and cosmetic settings are not part of
it, so moving the output directory or running on another device finds the same results.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from draggan.atomic_write import write_bytes_atomic
from draggan.version import __version__

_CHUNK = 1 << 20


def canonical(value: Any) -> Any:
    """``value`` as plain JSON data: dataclasses/dicts/tuples/arrays become dicts and lists.

    Floats are kept as floats (``1`` and ``1.0`` stay distinct only if their types differ,
    which typed configs prevent); non-finite floats become strings so the JSON is strict.
    """
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: canonical(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if hasattr(value, "model_dump"):  # pydantic models
        return canonical(value.model_dump())
    if isinstance(value, dict):
        return {str(k): canonical(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [canonical(v) for v in value]
    if isinstance(value, np.ndarray):
        return canonical(value.tolist())
    if isinstance(value, np.generic):
        return canonical(value.item())
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, Path):
        return str(value)
    if value is None or isinstance(value, (bool, int, str)):
        return value
    raise TypeError(f"cannot put a {type(value).__name__} into a stage key: {value!r}")


def canonical_json(value: Any) -> str:
    """Deterministic JSON text of ``value`` (sorted keys, no whitespace)."""
    return json.dumps(canonical(value), sort_keys=True, separators=(",", ":"), allow_nan=False)


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file's bytes (read in 1 MiB chunks)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class KeyMaterial:
    """Everything a stage result depends on; ``key`` is its hash."""

    stage: str  # 'align' | 'invert' | 'edit' | 'composite'
    version: int  # the stage implementation's version (bump when results change)
    params: dict[str, Any] = field(default_factory=dict)  # result-changing parameters
    inputs: dict[str, Any] = field(default_factory=dict)  # digests / upstream keys
    package: str = __version__

    def to_dict(self) -> dict[str, Any]:
        return {
            "stage": self.stage,
            "version": self.version,
            "package": self.package,
            "params": canonical(self.params),
            "inputs": canonical(self.inputs),
        }

    @property
    def key(self) -> str:
        return sha256_bytes(canonical_json(self.to_dict()).encode())[:40]


class DigestCache:
    """File digests cached by (absolute path, size, mtime), persisted as one JSON file.

    Hashing a 350 MB checkpoint takes about a second; the cache makes repeated runs free
    while any change to the file (size or modification time) re-hashes it.
    """

    def __init__(self, path: Path):
        self.path = Path(path)
        try:
            self._entries: dict[str, dict[str, Any]] = json.loads(self.path.read_text())
            if not isinstance(self._entries, dict):
                self._entries = {}
        except (OSError, ValueError):
            self._entries = {}

    def digest(self, file: Path) -> str:
        file = Path(file).resolve()
        stat = file.stat()
        entry = self._entries.get(str(file))
        if (
            entry
            and entry.get("size") == stat.st_size
            and entry.get("mtime_ns") == stat.st_mtime_ns
        ):
            return str(entry["sha256"])
        value = sha256_file(file)
        self._entries[str(file)] = {
            "size": stat.st_size,
            "mtime_ns": stat.st_mtime_ns,
            "sha256": value,
        }
        self._save()
        return value

    def _save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_bytes_atomic(self.path, json.dumps(self._entries, indent=1, sort_keys=True).encode())


def explain_change(old: dict[str, Any], new: dict[str, Any]) -> str:
    """Why ``new`` key material differs from ``old``, in words (for ``dragpipe status``).

    E.g. "drag parameters changed (lr: 0.002 -> 0.001)", "photo file changed",
    "upstream invert result changed", "dragpipe version changed (0.1.0 -> 0.2.0)".
    """
    reasons: list[str] = []
    stage = new.get("stage", "stage")
    if old.get("version") != new.get("version"):
        reasons.append(f"{stage} stage implementation changed")
    if old.get("package") != new.get("package"):
        reasons.append(f"dragpipe version changed ({old.get('package')} -> {new.get('package')})")
    old_in, new_in = old.get("inputs", {}), new.get("inputs", {})
    for name in sorted(set(old_in) | set(new_in)):
        if old_in.get(name) != new_in.get(name):
            reasons.append(_INPUT_WORDS.get(name, f"input {name} changed"))
    old_p, new_p = old.get("params", {}), new.get("params", {})
    for group in sorted(set(old_p) | set(new_p)):
        diffs = _flat_diff(old_p.get(group), new_p.get(group), "")
        if diffs:
            shown = ", ".join(diffs[:3]) + (", ..." if len(diffs) > 3 else "")
            words = _PARAM_WORDS.get(group, f"{group} parameters")
            reasons.append(f"{words} changed ({shown})")
    return "; ".join(reasons) if reasons else "parameters changed"


_INPUT_WORDS = {
    "photo": "photo file changed",
    "generator": "generator checkpoint changed",
    "landmarks": "landmarks file changed",
    "align": "alignment changed",
    "invert": "inversion changed",
    "start": "the edit it starts from changed",
    "edits": "an edit changed",
    "mask": "mask changed",
}


_PARAM_WORDS = {
    "points": "edit points/mask",
    "project": "projection parameters",
    "tune": "tuning parameters",
    "face": "face choice",
    "output": "crop size",
}


def _flat_diff(old: Any, new: Any, prefix: str) -> list[str]:
    """``path: old -> new`` for each differing leaf (dicts by key, equal-length lists by index)."""
    if isinstance(old, dict) and isinstance(new, dict):
        out: list[str] = []
        for name in sorted(set(old) | set(new)):
            out += _flat_diff(old.get(name), new.get(name), f"{prefix}.{name}" if prefix else name)
        return out
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        if all(not isinstance(v, (dict, list)) for v in old + new):
            return [] if old == new else [f"{prefix}: {_short(old)} -> {_short(new)}"]
        out = []
        for i, (a, b) in enumerate(zip(old, new, strict=True)):
            out += _flat_diff(a, b, f"{prefix}[{i}]")
        return out
    if old == new:
        return []
    return [f"{prefix or 'value'}: {_short(old)} -> {_short(new)}"]


def _short(value: Any) -> str:
    text = json.dumps(value, separators=(",", ":")) if value is not None else "unset"
    return text if len(text) <= 40 else text[:37] + "..."
