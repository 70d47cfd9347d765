"""The optional packages of the ONNX backend, found without importing them, imported lazily.

``onnx`` and ONNX Runtime's training build (``onnxruntime-training-cpu``, which ships the
``onnxruntime`` module with ``onnxruntime.training``) come with dragpipe's ``onnx`` extra.
Plain ``onnxruntime`` (inference only) runs the exported ``mapping.onnx`` and
``synthesis.onnx`` but cannot drag. The training wheels exist for Python 3.8-3.12 on Linux
x86_64, Windows x64 and macOS (the last release, 1.19.2).
"""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path
from types import ModuleType

from draggan.errors import DragganError

INSTALL = "pip install 'dragpipe[onnx]' (Python 3.8-3.12 on Linux x86_64, Windows x64, macOS)"


class OnnxUnavailable(DragganError, ImportError):
    """The ONNX backend's packages are not installed (one line: what to install)."""


def _has_training() -> bool:
    spec = importlib.util.find_spec("onnxruntime")
    if spec is None or not spec.submodule_search_locations:
        return False
    return any((Path(p) / "training" / "api").is_dir() for p in spec.submodule_search_locations)


def missing_training() -> str | None:
    """Why dragging with ONNX Runtime cannot work here (None: it can), without importing."""
    if importlib.util.find_spec("onnx") is None:
        return f"needs the onnx package, which is not installed: {INSTALL}"
    if importlib.util.find_spec("onnxruntime") is None:
        return f"needs ONNX Runtime's training build, which is not installed: {INSTALL}"
    if not _has_training():
        return (
            "the installed onnxruntime has no training API (plain onnxruntime runs inference "
            f"only): pip uninstall onnxruntime, then {INSTALL}"
        )
    return None


def require_training() -> None:
    """``OnnxUnavailable`` naming the extra unless ONNX Runtime training is installed."""
    problem = missing_training()
    if problem is not None:
        raise OnnxUnavailable(f"ONNX backend: {problem}")


def import_module(name: str) -> ModuleType:
    """``importlib.import_module(name)`` with ``OnnxUnavailable`` instead of ``ImportError``."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise OnnxUnavailable(f"ONNX backend: cannot import {name} ({exc}): {INSTALL}") from exc
