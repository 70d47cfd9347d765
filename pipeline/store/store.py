"""The content-addressed stage store: one directory per stage result, published atomically.

Layout under the workdir::

    results/<stage>/<key>/        a complete result: its files + manifest.json (written last)
    partial/<stage>-<key>/        a result being computed: files so far + checkpoints/
    refs/<photo id>/<slot>.json   the key material last used for a slot (for ``status``)
    artifacts/<kind>/<key>/       reusable exports (e.g. ``onnx``), keyed by what made them
    digests.json                  file digests cached by path, size and mtime
    lock                          the run lock (``pipeline.store.lock``)

A result is computed in its ``partial`` directory; long loops save their state in its
``checkpoints/`` subdirectory every few steps so a killed run resumes there. Publishing
writes ``manifest.json`` LAST (inputs, parameters, every file's SHA-256 and size, metrics,
timings), drops the checkpoints and renames the directory into ``results/`` in one
``os.rename``. Reading verifies the manifest and every file's digest: a damaged or
half-written result is reported, removed and recomputed, never used.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from pipeline.errors import PipelineError
from pipeline.store.keys import (
    DigestCache,
    KeyMaterial,
    canonical,
    canonical_json,
    sha256_bytes,
    sha256_file,
)

MANIFEST = "manifest.json"
CHECKPOINTS = "checkpoints"
MANIFEST_FORMAT = "dragpipe-result-1"

Reporter = Callable[[str], None]


class DamagedResult(PipelineError):
    """A stored result failed verification (it is removed and recomputed)."""


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON to ``path`` through a temporary file and ``os.replace`` (never half-written)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w") as handle:
        json.dump(data, handle, indent=1, sort_keys=True)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


@dataclass(frozen=True)
class Result:
    """A verified, complete stage result (read only)."""

    path: Path
    manifest: dict[str, Any]

    @property
    def key(self) -> str:
        return str(self.manifest["key"])

    @property
    def metrics(self) -> dict[str, Any]:
        return dict(self.manifest.get("metrics", {}))

    @property
    def timings(self) -> dict[str, float]:
        return dict(self.manifest.get("timings", {}))

    def file(self, name: str) -> Path:
        if name not in self.manifest["files"]:
            raise DamagedResult(f"stored result {self.path} has no file {name!r}")
        return self.path / name

    def has(self, name: str) -> bool:
        return name in self.manifest["files"]

    def json(self, name: str) -> Any:
        return json.loads(self.file(name).read_text())

    def tensors(self, name: str) -> dict[str, torch.Tensor]:
        return load_file(str(self.file(name)))


class Pending:
    """A result being computed, in ``partial/<stage>-<key>/``; ``commit`` publishes it."""

    def __init__(self, store: Store, material: KeyMaterial):
        self.store = store
        self.material = material
        self.key = material.key
        self.path = store.root / "partial" / f"{material.stage}-{self.key}"
        self.path.mkdir(parents=True, exist_ok=True)
        self._checkpoints = self.path / CHECKPOINTS

    def file(self, name: str) -> Path:
        """Where to write output file ``name`` (a plain name, no directories)."""
        if "/" in name or name in (MANIFEST, CHECKPOINTS) or name.startswith("."):
            raise ValueError(f"bad result file name {name!r}")
        return self.path / name

    def write_json(self, name: str, data: Any) -> None:
        write_json_atomic(self.file(name), canonical(data))

    def write_tensors(self, name: str, tensors: dict[str, torch.Tensor]) -> None:
        target = self.file(name)
        tmp = target.with_name(f".{name}.tmp")
        save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(tmp))
        os.replace(tmp, target)

    # Loop checkpoints ---------------------------------------------------------------------
    def save_checkpoint(self, name: str, tensors: dict[str, torch.Tensor], meta: Any) -> None:
        """Save a loop's state (tensors + JSON-able meta) atomically as ``checkpoints/<name>``."""
        self._checkpoints.mkdir(exist_ok=True)
        target = self._checkpoints / f"{name}.safetensors"
        tmp = target.with_name(f".{target.name}.tmp")
        data = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
        save_file(data, str(tmp), metadata={"meta": json.dumps(canonical(meta))})
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, target)

    def load_checkpoint(self, name: str) -> tuple[dict[str, torch.Tensor], Any] | None:
        """The last saved state of loop ``name``, or None (none saved, or unreadable)."""
        target = self._checkpoints / f"{name}.safetensors"
        if not target.is_file():
            return None
        try:
            from safetensors import safe_open

            with safe_open(str(target), framework="pt") as handle:
                meta = json.loads((handle.metadata() or {})["meta"])
                tensors = {k: handle.get_tensor(k) for k in handle.keys()}  # noqa: SIM118
        except (SafetensorError, OSError, KeyError, ValueError) as exc:
            self.store.report(f"ignoring unreadable checkpoint {target}: {exc}")
            target.unlink(missing_ok=True)
            return None
        return tensors, meta

    def drop_checkpoint(self, name: str) -> None:
        (self._checkpoints / f"{name}.safetensors").unlink(missing_ok=True)

    # Publishing ---------------------------------------------------------------------------
    def commit(
        self,
        metrics: dict[str, Any] | None = None,
        timings: dict[str, float] | None = None,
        info: dict[str, Any] | None = None,
    ) -> Result:
        """Write the manifest last and move the directory into ``results/`` atomically."""
        files: dict[str, dict[str, Any]] = {}
        for entry in sorted(self.path.iterdir()):
            if entry.name in (MANIFEST, CHECKPOINTS) or entry.name.startswith("."):
                continue
            if not entry.is_file():
                raise PipelineError(f"unexpected entry {entry} in a stage result")
            with open(entry, "rb+") as handle:
                os.fsync(handle.fileno())
            files[entry.name] = {"sha256": sha256_file(entry), "size": entry.stat().st_size}
        manifest = {
            "format": MANIFEST_FORMAT,
            "key": self.key,
            "stage": self.material.stage,
            "material": self.material.to_dict(),
            "files": files,
            "metrics": canonical(metrics or {}),
            "timings": canonical(timings or {}),
            "info": canonical(info or {}),
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        write_json_atomic(self.path / MANIFEST, manifest)
        shutil.rmtree(self._checkpoints, ignore_errors=True)
        for leftover in self.path.glob(".*"):
            leftover.unlink(missing_ok=True)
        _fsync_dir(self.path)
        final = self.store.result_dir(self.material.stage, self.key)
        final.parent.mkdir(parents=True, exist_ok=True)
        if final.exists():  # a damaged copy that verification rejected: replace it
            shutil.rmtree(final)
        os.rename(self.path, final)
        _fsync_dir(final.parent)
        return Result(final, manifest)

    def discard(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


class Store:
    """A workdir of stage results. Not thread-safe; hold ``RunLock`` while writing."""

    def __init__(self, root: Path, report: Reporter | None = None):
        self.root = Path(root)
        self.report = report or (lambda message: None)
        self._digests: DigestCache | None = None

    # Paths --------------------------------------------------------------------------------
    def result_dir(self, stage: str, key: str) -> Path:
        return self.root / "results" / stage / key

    @property
    def digests(self) -> DigestCache:
        if self._digests is None:
            self._digests = DigestCache(self.root / "digests.json")
        return self._digests

    def file_digest(self, path: Path) -> str:
        """SHA-256 of a user file, cached by path, size and mtime."""
        return self.digests.digest(Path(path))

    # Results ------------------------------------------------------------------------------
    def exists(self, stage: str, key: str) -> bool:
        """Cheap check (manifest present, files present with the recorded sizes)."""
        path = self.result_dir(stage, key)
        try:
            manifest = json.loads((path / MANIFEST).read_text())
            return (
                all(
                    (path / name).stat().st_size == entry["size"]
                    for name, entry in manifest["files"].items()
                )
                and manifest.get("key") == key
            )
        except (OSError, ValueError, KeyError, TypeError):
            return False

    def lookup(self, material: KeyMaterial) -> Result | None:
        """The verified result for ``material``, or None. A damaged one is reported and removed."""
        key = material.key
        path = self.result_dir(material.stage, key)
        if not path.exists():
            return None
        try:
            return self._verify(path, key)
        except DamagedResult as exc:
            self.report(f"{exc}; removing it and recomputing")
            shutil.rmtree(path, ignore_errors=True)
            return None

    def _verify(self, path: Path, key: str) -> Result:
        try:
            manifest = json.loads((path / MANIFEST).read_text())
        except FileNotFoundError:
            raise DamagedResult(f"stored result {path} has no manifest (half-written)") from None
        except (OSError, ValueError) as exc:
            raise DamagedResult(
                f"stored result {path} has an unreadable manifest ({exc})"
            ) from None
        if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
            raise DamagedResult(f"stored result {path} has a manifest of unknown format")
        if manifest.get("key") != key:
            raise DamagedResult(f"stored result {path} has the manifest of another key")
        material = manifest.get("material", {})
        recomputed = KeyMaterial(
            stage=material.get("stage", ""),
            version=material.get("version", -1),
            params=material.get("params", {}),
            inputs=material.get("inputs", {}),
            package=material.get("package", ""),
        ).key
        if recomputed != key:
            raise DamagedResult(f"stored result {path} has a manifest that does not match its key")
        for name, entry in manifest.get("files", {}).items():
            file = path / name
            if not file.is_file():
                raise DamagedResult(f"stored result {path} is missing its file {name}")
            if file.stat().st_size != entry["size"] or sha256_file(file) != entry["sha256"]:
                raise DamagedResult(f"stored file {file} is damaged (digest mismatch)")
        return Result(path, manifest)

    def begin(self, material: KeyMaterial) -> Pending:
        """Start (or resume, keeping its checkpoints) computing the result for ``material``."""
        return Pending(self, material)

    def remove(self, stage: str, key: str) -> bool:
        path = self.result_dir(stage, key)
        if path.exists():
            shutil.rmtree(path)
            return True
        return False

    # Refs: what each slot (photo, stage, edit) last resolved to, for `status` ----------------
    def _ref_path(self, photo_id: str, slot: str) -> Path:
        return self.root / "refs" / photo_id / f"{slot}.json"

    def write_ref(self, photo_id: str, slot: str, material: KeyMaterial) -> None:
        path = self._ref_path(photo_id, slot)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(path, {"key": material.key, "material": material.to_dict()})

    def read_ref(self, photo_id: str, slot: str) -> dict[str, Any] | None:
        try:
            data = json.loads(self._ref_path(photo_id, slot).read_text())
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) and "material" in data else None

    # Reusable artifacts: directories keyed by what they are made from -------------------
    def artifact_dir(self, kind: str, material: dict[str, Any]) -> Path:
        """``artifacts/<kind>/<key>/`` (not created), ``key`` the SHA-256 of ``material``'s
        canonical JSON plus the package version. Its producer writes, verifies and replaces
        it (e.g. ``draggan.onnx``: manifest last, refused when stale); the store names it."""
        from draggan.version import __version__

        key = sha256_bytes(canonical_json({"material": material, "package": __version__}).encode())
        return self.root / "artifacts" / kind / key

    def remove_artifacts(self) -> int:
        """Remove every reusable artifact; returns the bytes freed."""
        base = self.root / "artifacts"
        if not base.is_dir():
            return 0
        freed = sum(p.stat().st_size for p in base.rglob("*") if p.is_file())
        shutil.rmtree(base, ignore_errors=True)
        return freed

    # Cleaning -----------------------------------------------------------------------------
    def all_results(self) -> list[tuple[str, str]]:
        """Every (stage, key) under ``results/``."""
        out = []
        base = self.root / "results"
        if base.is_dir():
            for stage_dir in sorted(base.iterdir()):
                if stage_dir.is_dir():
                    out += [(stage_dir.name, p.name) for p in sorted(stage_dir.iterdir())]
        return out

    def size_of(self, stage: str, key: str) -> int:
        path = self.result_dir(stage, key)
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
