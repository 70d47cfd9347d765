"""Shared measuring helpers of the bench scripts: the machine line, interleaved timings,
the foreign load during a measurement, peak resident memory of a piece of work.

Imported by the scripts as ``import _measure`` (bench/ is first on their sys.path).
"""

from __future__ import annotations

import os
import resource
import statistics
import time
from collections.abc import Callable, Mapping

import torch

from draggan.autotune import cpu_model


def machine_line() -> str:
    """CPU model, the kernels' instruction set, torch version, threads (one line)."""
    isa = torch.backends.cpu.get_cpu_capability()
    for var in ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "OMP_WAIT_POLICY"):
        if os.environ.get(var):
            isa += f", {var}={os.environ[var]}"
    return (
        f"{cpu_model()} ({os.cpu_count()} cores; kernels {isa}), torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads"
    )


def _busy_ticks() -> float:
    """CPU time (s) all processes spent busy, from /proc/stat (Linux; 0 elsewhere)."""
    try:
        with open("/proc/stat") as f:
            fields = [float(v) for v in f.readline().split()[1:]]
    except OSError:
        return 0.0
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0.0)  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def _own_cpu() -> float:
    """CPU seconds of this process and of its waited-for children."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


class ForeignLoad:
    """Average number of cores other processes (not ours, nor our children) kept busy
    while the block ran."""

    def __enter__(self) -> ForeignLoad:
        self.start = (time.perf_counter(), _busy_ticks(), _own_cpu())
        return self

    def __exit__(self, *exc: object) -> None:
        wall = time.perf_counter() - self.start[0]
        busy = _busy_ticks() - self.start[1]
        own = _own_cpu() - self.start[2]
        self.cores = max(busy - own, 0.0) / wall if wall > 0 else 0.0

    def __str__(self) -> str:
        return f"foreign load {self.cores:.2f} cores"


def interleaved(calls: Mapping[str, Callable[[], object]], repeats: int) -> dict[str, list[float]]:
    """Seconds of ``repeats`` runs of each call, alternating the calls in every round so
    that a loaded machine slows them alike (each call is run once first, untimed)."""
    for call in calls.values():
        call()
    times: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(repeats):
        for name, call in calls.items():
            start = time.perf_counter()
            call()
            times[name].append(time.perf_counter() - start)
    return times


def median(values: list[float]) -> float:
    return statistics.median(values)


def _status_mb(field: str) -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024.0  # kB
    raise RuntimeError(f"no {field} in /proc/self/status")


def peak_rss_mb(work: Callable[[], object]) -> tuple[float, float]:
    """(peak resident MB while ``work`` ran, resident MB just before). Linux: the peak
    (VmHWM) is reset through /proc/self/clear_refs first."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    before = _status_mb("VmRSS")
    work()
    return _status_mb("VmHWM"), before
