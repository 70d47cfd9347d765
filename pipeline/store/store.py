"""The content-addressed stage store: one directory per stage result, published atomically.

Layout under the workdir::

    results/<stage>/<key>/        a complete result: its files + manifest.json (written last)
    partial/<stage>-<key>/        a result being computed: files so far + checkpoints/
    refs/<photo id>/<slot>.json   the key material last used for a slot (for ``status``)
    generators/<digest>.json      facts about a generator checkpoint (its resolution, ...)
    artifacts/<kind>/<key>/       reusable exports (e.g. ``onnx``), keyed by what made them
    digests.json                  file digests cached by path, size and mtime
    lock                          the run lock (``pipeline.store.lock``)

Only this module knows these names: everything else asks ``Store`` (results by stage and
key, partial results, refs, generator facts, artifact directories, file digests). Every file is written through
``draggan.atomic_write`` (temporary file, fsync, ``os.replace``, fsync of the folder).

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

from draggan.atomic_write import atomic_write, fsync_path, write_bytes_atomic
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
RESULTS, PARTIAL, REFS, GENERATORS, ARTIFACTS, DIGESTS = (
    "results",
    "partial",
    "refs",
    "generators",
    "artifacts",
    "digests.json",
)

Reporter = Callable[[str], None]


class DamagedResult(PipelineError):
    """A stored result failed verification (it is removed and recomputed)."""


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON (sorted keys, indented) to ``path`` through ``atomic_write``."""
    text = json.dumps(data, indent=1, sort_keys=True)
    write_bytes_atomic(path, text.encode())


@dataclass(frozen=True)
class Ref:
    """A stage result by identity: what a job needs from another job (picklable)."""

    stage: str
    key: str


@dataclass(frozen=True)
class Result:
    """A verified, complete stage result (read only)."""

    path: Path
    manifest: dict[str, Any]

    @property
    def key(self) -> str:
        return str(self.manifest["key"])

    @property
    def stage(self) -> str:
        return str(self.manifest["stage"])

    @property
    def ref(self) -> Ref:
        return Ref(self.stage, self.key)

    @property
    def info(self) -> dict[str, Any]:
        return dict(self.manifest.get("info", {}))

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
        self.path = store.partial_dir(material.stage, self.key)
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
        with atomic_write(self.file(name)) as tmp:
            save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(tmp))

    # Loop checkpoints ---------------------------------------------------------------------
    def save_checkpoint(self, name: str, tensors: dict[str, torch.Tensor], meta: Any) -> None:
        """Save a loop's state (tensors + JSON-able meta) atomically as ``checkpoints/<name>``."""
        self._checkpoints.mkdir(exist_ok=True)
        data = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
        with atomic_write(self._checkpoints / f"{name}.safetensors") as tmp:
            save_file(data, str(tmp), metadata={"meta": json.dumps(canonical(meta))})

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
            fsync_path(entry)
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
        fsync_path(self.path)
        final = self.store.result_dir(self.material.stage, self.key)
        final.parent.mkdir(parents=True, exist_ok=True)
        if final.exists():  # a damaged copy that verification rejected: replace it
            shutil.rmtree(final)
        os.rename(self.path, final)
        fsync_path(final.parent)
        result = Result(final, manifest)
        self.store._remember(result)
        return result

    def discard(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


class Store:
    """A workdir of stage results. Not thread-safe; hold ``RunLock`` while writing.

    Results: ``exists`` (cheap), ``lookup(material)`` / ``result(ref)`` (verified),
    ``begin(material)`` -> ``Pending`` -> ``commit``; ``all_results``, ``partials``,
    ``remove``, ``remove_partial``, ``size_of``. Refs (what each slot of a photo last
    resolved to, for ``status``): ``write_ref``, ``read_ref``, ``ref_slots``, ``drop_refs``.
    Generator facts: ``generator_info``, ``remember_generator``. User files:
    ``file_digest``.
    """

    def __init__(self, root: Path, report: Reporter | None = None):
        self.root = Path(root)
        self.report = report or (lambda message: None)
        self._digests: DigestCache | None = None
        # Results this process verified (or committed), with their files' (size, mtime):
        # ``result`` re-verifies only when those changed.
        self._verified: dict[Ref, tuple[Result, tuple]] = {}

    # Paths --------------------------------------------------------------------------------
    def result_dir(self, stage: str, key: str) -> Path:
        return self.root / RESULTS / stage / key

    def partial_dir(self, stage: str, key: str) -> Path:
        return self.root / PARTIAL / f"{stage}-{key}"

    @property
    def digests(self) -> DigestCache:
        if self._digests is None:
            self._digests = DigestCache(self.root / DIGESTS)
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
        """The verified result for ``material``, or None. A damaged one is reported and removed.

        Every file's digest is checked on each call."""
        return self._verified_result(Ref(material.stage, material.key), "recomputing")

    def result(self, ref: Ref) -> Result:
        """The verified result ``ref`` names (an upstream result a job reads); a missing or
        damaged one is a ``DamagedResult``, since the job that makes it ran before.

        A result this process verified or committed is not hashed again unless a file's
        size or modification time changed since."""
        known = self._verified.get(ref)
        if known is not None and _stamp(known[0]) == known[1]:
            return known[0]
        found = self._verified_result(ref, "it must be recomputed")
        if found is None:
            raise DamagedResult(
                f"stored {ref.stage} result {ref.key} is missing; run the spec again to "
                "recompute it"
            )
        return found

    def _verified_result(self, ref: Ref, then: str) -> Result | None:
        path = self.result_dir(ref.stage, ref.key)
        if not path.exists():
            return None
        try:
            result = self._verify(path, ref.key)
        except DamagedResult as exc:
            self.report(f"{exc}; removing it and {then}")
            shutil.rmtree(path, ignore_errors=True)
            self._verified.pop(ref, None)
            return None
        self._remember(result)
        return result

    def _remember(self, result: Result) -> None:
        self._verified[result.ref] = (result, _stamp(result))

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
        """Delete a complete result; False when there was none."""
        self._verified.pop(Ref(stage, key), None)
        path = self.result_dir(stage, key)
        if path.exists():
            shutil.rmtree(path)
            return True
        return False

    def all_results(self) -> list[tuple[str, str]]:
        """Every (stage, key) under ``results/``."""
        out = []
        base = self.root / RESULTS
        if base.is_dir():
            for stage_dir in sorted(base.iterdir()):
                if stage_dir.is_dir():
                    out += [(stage_dir.name, p.name) for p in sorted(stage_dir.iterdir())]
        return out

    def size_of(self, stage: str, key: str) -> int:
        """Bytes a complete result takes."""
        return _tree_size(self.result_dir(stage, key))

    # Partial results (interrupted computations, with their checkpoints) -------------------
    def partials(self) -> list[tuple[str, str]]:
        """Every (stage, key) being computed or interrupted, under ``partial/``."""
        base = self.root / PARTIAL
        if not base.is_dir():
            return []
        found = []
        for entry in sorted(base.iterdir()):
            stage, _, key = entry.name.partition("-")
            if entry.is_dir() and key:
                found.append((stage, key))
        return found

    def partial_size(self, stage: str, key: str) -> int:
        return _tree_size(self.partial_dir(stage, key))

    def remove_partial(self, stage: str, key: str) -> None:
        shutil.rmtree(self.partial_dir(stage, key), ignore_errors=True)

    # Refs: what each slot (photo, stage, edit) last resolved to, for `status` ----------------
    def _ref_path(self, photo_id: str, slot: str) -> Path:
        return self.root / REFS / photo_id / f"{slot}.json"

    def write_ref(self, photo_id: str, slot: str, material: KeyMaterial) -> None:
        path = self._ref_path(photo_id, slot)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(path, {"key": material.key, "material": material.to_dict()})

    def read_ref(self, photo_id: str, slot: str) -> dict[str, Any] | None:
        """``{'key': ..., 'material': KeyMaterial.to_dict()}`` last written, or None."""
        try:
            data = json.loads(self._ref_path(photo_id, slot).read_text())
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) and "material" in data else None

    def ref_slots(self, photo_id: str) -> list[str]:
        """The slots of ``photo_id`` that have a ref, sorted."""
        folder = self.root / REFS / photo_id
        return sorted(p.stem for p in folder.glob("*.json")) if folder.is_dir() else []

    def drop_refs(self) -> None:
        """Forget every ref (``clean --all``)."""
        shutil.rmtree(self.root / REFS, ignore_errors=True)

    # Generator facts, by checkpoint digest (so `status` need not load a checkpoint) --------
    def generator_info(self, digest: str) -> dict[str, Any] | None:
        try:
            data = json.loads((self.root / GENERATORS / f"{digest}.json").read_text())
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def remember_generator(self, digest: str, info: dict[str, Any]) -> None:
        path = self.root / GENERATORS / f"{digest}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(path, canonical(info))

    # Reusable artifacts: directories keyed by what they are made from -------------------
    def artifact_dir(self, kind: str, material: dict[str, Any]) -> Path:
        """``artifacts/<kind>/<key>/`` (not created), ``key`` the SHA-256 of ``material``'s
        canonical JSON plus the package version. Its producer writes, verifies and replaces
        it (e.g. ``draggan.onnx``: manifest last, refused when stale); the store names it."""
        from draggan.version import __version__

        key = sha256_bytes(canonical_json({"material": material, "package": __version__}).encode())
        return self.root / ARTIFACTS / kind / key

    def remove_artifacts(self) -> int:
        """Remove every reusable artifact (``clean --all``); returns the bytes freed."""
        base = self.root / ARTIFACTS
        if not base.is_dir():
            return 0
        freed = _tree_size(base)
        shutil.rmtree(base, ignore_errors=True)
        return freed


def _stamp(result: Result) -> tuple:
    """(name, size, mtime_ns) of a result's files and manifest; () when one is missing."""
    try:
        return tuple(
            (name, stat.st_size, stat.st_mtime_ns)
            for name in sorted([*result.manifest["files"], MANIFEST])
            for stat in [(result.path / name).stat()]
        )
    except OSError:
        return ()


def _tree_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
