"""Code from other checkouts, imported next to ours in one process (bench scripts only).

``Checkout(root, packages, modules)`` imports ``modules`` from the folder ``root`` while
keeping the top-level ``packages`` of that checkout apart from same-named ones already
loaded: the upstream repositories both have ``torch_utils``, ``training``, ``dnnlib``; an
older dragpipe checkout (a "before" to compare with) has ``draggan`` and ``inversion``
like the code being measured. Its modules enter ``sys.modules`` only inside
``with checkout.active():`` (NVIDIA's persistence decorator needs its own module
importable while networks are constructed).

Imported by the scripts as ``import _checkouts`` (bench/ is first on their sys.path).
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import sys
import types
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

UPSTREAM = ("dnnlib", "torch_utils", "training", "legacy", "viz", "gui_utils")
DRAGPIPE = ("draggan", "inversion", "pipeline")
# Absent modules that upstream imports at load time but the measured code never calls.
STAND_INS = ("click", "requests", "matplotlib", "matplotlib.cm")


class _StandIn(types.ModuleType):
    """Any attribute is a decorator factory that leaves the decorated function alone."""

    def __getattr__(self, name: str) -> Callable:
        def factory(*args, **kwargs):
            if len(args) == 1 and callable(args[0]) and not kwargs:
                return args[0]
            return lambda fn: fn

        return factory


class Checkout:
    """``modules`` imported from the checkout ``root``; ``checkout['a.b']`` is one of them."""

    def __init__(
        self,
        root: Path,
        packages: Sequence[str],
        modules: Sequence[str],
        stand_ins: Sequence[str] = (),
    ) -> None:
        if not (root / packages[0]).is_dir() and not (root / f"{packages[0]}.py").is_file():
            sys.exit(f"{root} is not a checkout with {packages[0]}/: give the path of a git clone")
        self.root = root
        self.packages = tuple(packages)
        self.own: dict[str, types.ModuleType] = {}
        self.stand_ins: list[str] = []
        with self.active():
            for name in stand_ins:
                top = name.split(".")[0]
                if name in sys.modules:
                    continue
                if top in self.stand_ins or importlib.util.find_spec(top) is None:
                    sys.modules[name] = _StandIn(name)
                    self.stand_ins.append(name)
            try:
                self.modules = {m: importlib.import_module(m) for m in modules}
            except ImportError as exc:
                sys.exit(f"cannot import {exc.name!r} from the checkout {root}: {exc}")

    def _owned(self, name: str) -> bool:
        return name.split(".")[0] in self.packages or name in self.stand_ins

    @contextlib.contextmanager
    def active(self) -> Iterator[None]:
        saved = {k: sys.modules.pop(k) for k in list(sys.modules) if self._owned(k)}
        sys.modules.update(self.own)
        sys.path.insert(0, str(self.root))
        importlib.invalidate_caches()
        try:
            yield
        finally:
            sys.path.remove(str(self.root))
            self.own = {k: sys.modules.pop(k) for k in list(sys.modules) if self._owned(k)}
            sys.modules.update(saved)

    def __getitem__(self, module: str) -> types.ModuleType:
        return self.modules[module]
