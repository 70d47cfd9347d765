"""Choosing among equivalent implementations of a hot op by timing them on this machine.

Like cuDNN's benchmark mode: the first time an op runs with a given signature (shapes,
dtype, which inputs need gradients) on a given device, torch build and thread count, each
candidate implementation runs a few times on random inputs of that signature and the
fastest is kept, in memory and in a JSON file, so that later runs skip the measurement.
The candidates of an op compute the same mathematics and differ only in floating-point
rounding; each op documents how far its candidates may differ and the tests hold them to
it (never bit-equality between two candidates).

The cache file belongs to the caller: ``Autotuner(cache_path=...)``; by default it is
``autotune-v1.json`` in the user's cache folder (``$XDG_CACHE_HOME/dragpipe``, else
``~/.cache/dragpipe``; ``%LOCALAPPDATA%\\dragpipe`` on Windows; ``~/Library/Caches/dragpipe``
on macOS). A cache file that cannot be read or written is ignored: the tuner measures
again and reports the problem through ``on_warning`` and ``warnings`` (it never prints).

Overrides: ``override='off'`` uses every op's default candidate without measuring (nothing
is read or written), ``override={'modulated_conv': 'unfused-contiguous'}`` fixes an op's
choice. ``Autotuner.from_environment()`` reads the same from ``DRAGPIPE_AUTOTUNE``
(``off``, or ``op=candidate[,op=candidate]``).
"""

from __future__ import annotations

import functools
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import torch

from draggan.errors import DragganError

ENV_VAR = "DRAGPIPE_AUTOTUNE"
CACHE_FILE = "autotune-v1.json"
FILE_FORMAT = "dragpipe-autotune"
FILE_VERSION = 1
OFF = "off"

# The ops that consult a tuner, with their candidates (the first is the default: what
# runs with override='off'). Kept here so that overrides are checked when they are given.
OPS: dict[str, tuple[str, ...]] = {
    # One StyleGAN2 synthesis layer (modulated 3x3 conv, optional x2 up-sampling, noise,
    # bias, lrelu, clamp): fused (per-sample weights, one convolution) or unfused (scale
    # the activations, shared-weight convolution, scale the result), with activations in
    # channels_last or contiguous memory. See ``draggan.layers.SynthesisLayer``.
    "modulated_conv": (
        "fused-channels_last",
        "fused-contiguous",
        "unfused-channels_last",
        "unfused-contiguous",
    ),
}

Measure = Callable[[str], Callable[[], object]]  # candidate name -> one timed call
LONG_RUN = 0.05  # s: a first run this long counts as a measurement
KEEP = 1.5  # candidates slower than this times the best are not run again


class AutotuneError(DragganError):
    """An override names an unknown op or candidate."""


def default_cache_path() -> Path:
    """``autotune-v1.json`` in the user's cache folder for dragpipe."""
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Caches"
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "dragpipe" / CACHE_FILE


@functools.cache
def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux, else ``platform.processor()``),
    read once per process: every tuned layer call builds a key with it."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return " ".join(line.split(":", 1)[1].split())
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown cpu"


def device_tag(device: torch.device) -> str:
    """What a measurement depends on besides the op: device model, kernel ISA, threads."""
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        major, minor = torch.cuda.get_device_capability(index)
        return f"cuda {torch.cuda.get_device_name(index)} sm{major}{minor}"
    if device.type == "cpu":
        isa = torch.backends.cpu.get_cpu_capability()
        onednn = os.environ.get("ONEDNN_MAX_CPU_ISA") or os.environ.get("DNNL_MAX_CPU_ISA")
        isa = f"{isa} onednn<={onednn}" if onednn else isa
        return f"cpu {cpu_model()} {isa} threads={torch.get_num_threads()}"
    return f"{device.type} {platform.machine()}"


def parse_override(text: str | None) -> str | dict[str, str] | None:
    """``DRAGPIPE_AUTOTUNE`` syntax: empty -> None, ``off``, or ``op=candidate,...``."""
    if text is None or not text.strip():
        return None
    if text.strip().lower() == OFF:
        return OFF
    out = {}
    for item in text.split(","):
        op, sep, choice = item.partition("=")
        if not sep:
            raise AutotuneError(
                f"{ENV_VAR}={text!r}: expected 'off' or op=candidate pairs separated by "
                f"commas, e.g. modulated_conv=fused-contiguous"
            )
        out[op.strip()] = choice.strip()
    return out


def _check_override(override: str | Mapping[str, str] | None) -> str | dict[str, str] | None:
    if override is None or override == OFF:
        return override
    if isinstance(override, str):
        raise AutotuneError(f"autotune override {override!r}: use 'off' or a dict op -> candidate")
    for op, choice in override.items():
        if op not in OPS:
            raise AutotuneError(f"autotune override: unknown op {op!r}; known ops: {list(OPS)}")
        if choice not in OPS[op]:
            raise AutotuneError(
                f"autotune override: {op} has no candidate {choice!r}; choose one of {list(OPS[op])}"
            )
    return dict(override)


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


class Autotuner:
    """Picks, per op and signature, the fastest candidate measured on this machine.

    ``cache_path``: the JSON file that keeps choices across runs (None: the user cache
    folder, see ``default_cache_path``); ``persist=False`` keeps them in memory only.
    ``override``: ``'off'`` (defaults, nothing measured) or ``{op: candidate}``.
    ``on_warning(message)``: called for cache files that cannot be read or written (the
    messages also collect in ``warnings``). ``repeats``: rounds after the first run of every
    candidate, among those within ``KEEP`` x the best (see ``_measure``); the fastest run
    counts. ``margin``: another candidate replaces the
    default only when it is faster by more than this fraction. ``timer``: the clock.

    A tuner is shared, not copied, by ``copy.deepcopy`` of the modules that hold it.
    """

    def __init__(
        self,
        cache_path: str | os.PathLike[str] | None = None,
        *,
        override: str | Mapping[str, str] | None = None,
        persist: bool = True,
        on_warning: Callable[[str], None] | None = None,
        repeats: int = 2,
        margin: float = 0.03,  # a candidate must beat the default by this fraction
        timer: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.override = _check_override(override)
        self.cache_path = Path(cache_path) if cache_path is not None else default_cache_path()
        self.persist = persist and self.override != OFF
        self.on_warning = on_warning
        self.repeats = max(1, int(repeats))
        self.margin = float(margin)
        self.timer = timer
        self.warnings: list[str] = []
        self.entries: dict[str, dict] = {}  # key -> {"choice": name, "seconds": {...}}
        self._loaded = False

    @classmethod
    def from_environment(
        cls,
        cache_path: str | os.PathLike[str] | None = None,
        on_warning: Callable[[str], None] | None = None,
    ) -> Autotuner:
        """A tuner with the override given by ``DRAGPIPE_AUTOTUNE`` (if set)."""
        return cls(
            cache_path, override=parse_override(os.environ.get(ENV_VAR)), on_warning=on_warning
        )

    def __deepcopy__(self, memo: dict) -> Autotuner:
        return self

    def key(self, op: str, signature: str, device: torch.device) -> str:
        return f"{op} | {device_tag(device)} | torch {torch.__version__} | {signature}"

    def choose(
        self,
        op: str,
        signature: str,  # shapes, dtype, gradient flags: everything the timing depends on
        candidates: Sequence[str],  # allowed candidates of ``op``, default first
        measure: Measure,  # name -> a callable running that candidate once
        device: torch.device,
    ) -> str:
        """The candidate to run (measured once per key, then cached)."""
        if len(candidates) == 1:
            return candidates[0]
        if self.override == OFF:
            return candidates[0]
        if isinstance(self.override, dict) and op in self.override:
            return _closest(self.override[op], candidates)
        key = self.key(op, signature, device)
        entry = self._entry(key, candidates)
        if entry is None:
            seconds = self._measure(candidates, measure, device)
            entry = {"choice": self._pick(candidates, seconds), "seconds": seconds}
            self.entries[key] = entry
            self._save(key, entry)
        return entry["choice"]

    def _entry(self, key: str, candidates: Sequence[str]) -> dict | None:
        if key not in self.entries and self.persist and not self._loaded:
            self._loaded = True
            self.entries = {**self._read(), **self.entries}
        entry = self.entries.get(key)
        if entry is None or entry.get("choice") not in candidates:
            return None
        return entry

    def _measure(
        self, candidates: Sequence[str], measure: Measure, device: torch.device
    ) -> dict[str, float]:
        """Fastest run per candidate (the least disturbed by other load). Every candidate
        runs once (a first run longer than ``LONG_RUN`` s counts: its one-time set-up is
        small beside it; shorter ones are warm-ups), then up to ``repeats`` rounds of the
        candidates still within ``KEEP`` times the best, alternating them so that a loaded
        machine slows them alike."""
        calls = {name: measure(name) for name in candidates}
        first = {name: self._time(call, device) for name, call in calls.items()}
        times = {name: [t] if t >= LONG_RUN else [] for name, t in first.items()}
        best = min(first.values())
        active = [name for name in candidates if first[name] <= KEEP * best]
        for _ in range(self.repeats):
            if len(active) == 1 and times[active[0]]:
                break
            for name in active:
                times[name].append(self._time(calls[name], device))
            best = min(min(times[name]) for name in active)
            active = [name for name in active if min(times[name]) <= KEEP * best]
        return {name: min(times[name]) if times[name] else first[name] for name in candidates}

    def _time(self, call: Callable[[], object], device: torch.device) -> float:
        _synchronize(device)
        start = self.timer()
        call()
        _synchronize(device)
        return self.timer() - start

    def _pick(self, candidates: Sequence[str], seconds: Mapping[str, float]) -> str:
        best = min(candidates, key=lambda n: seconds[n])
        if seconds[best] < seconds[candidates[0]] * (1 - self.margin):
            return best
        return candidates[0]

    def _warn(self, message: str) -> None:
        self.warnings.append(message)
        if self.on_warning is not None:
            self.on_warning(message)

    def _read(self, quiet: bool = False) -> dict[str, dict]:
        """The file's entries; {} (with a warning unless ``quiet``) when it is unusable."""
        path = self.cache_path
        try:
            text = path.read_text(encoding="utf-8")
        except (FileNotFoundError, NotADirectoryError):  # nothing cached yet
            return {}
        except OSError as exc:
            if not quiet:
                self._warn(
                    f"autotune cache {path} cannot be read ({exc.strerror}); measuring again"
                )
            return {}
        try:
            data = json.loads(text)
            if data.get("format") != FILE_FORMAT or data.get("version") != FILE_VERSION:
                raise ValueError("not a dragpipe autotune cache of this version")
            entries = data["entries"]
            if not isinstance(entries, dict) or not all(
                isinstance(v, dict) and isinstance(v.get("choice"), str) for v in entries.values()
            ):
                raise ValueError("malformed entries")
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            if quiet:
                return {}
            self._warn(
                f"autotune cache {path} is corrupt ({exc}); ignoring it, it will be rewritten"
            )
            return {}
        return entries

    def _save(self, key: str, entry: dict) -> None:
        """Merge ``entry`` into the file (other processes may have added entries)."""
        if not self.persist:
            return
        path = self.cache_path
        entries = {**self._read(quiet=True), key: entry}
        data = {"format": FILE_FORMAT, "version": FILE_VERSION, "entries": entries}
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as f:
                    json.dump(data, f, indent=1, sort_keys=True)
                os.replace(tmp, path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError as exc:
            self.persist = False
            self._warn(
                f"autotune cache {path} cannot be written ({exc.strerror}); "
                "choices are kept for this process only"
            )


def _closest(wanted: str, candidates: Sequence[str]) -> str:
    """``wanted`` if allowed here, else the allowed candidate sharing most of its parts
    (e.g. the caller pinned the modulation, the override still sets the memory format)."""
    if wanted in candidates:
        return wanted
    parts = set(wanted.split("-"))
    return max(candidates, key=lambda name: len(parts & set(name.split("-"))))
