"""Run a spec on a Ray cluster (``dragpipe run SPEC --executor ray``).

The unit of work is the job graph's ``Job`` (``pipeline.jobs``): plain picklable data that
any process can compute against the workdir. The driver (``driver.py``) holds the workdir
lock, schedules each job as a Ray Core task once the results it reads exist (a photo's
alignment first; its faces decide its inversion, drag and composite jobs), shows the
workers' progress as a local run does and copies the outputs. A worker (``worker.py``)
opens a stage context on the same workdir, checks that it sees the driver's lock (same
shared storage, same run) and computes the job with ``pipeline.execute.run_job``, under the
result's lease. Progress travels as small events through an actor (``events.py``);
results never travel through Ray: they are published in the shared workdir.

``ray`` is an optional dependency (the ``ray`` extra). Nothing here imports it until a run
asks for it; ``require_ray`` says what to install when it is missing.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType

from pipeline.errors import UsageError

INSTALL_HINT = "pip install 'dragpipe[ray]' (or: pip install ray)"


def require_ray() -> ModuleType:
    """The ``ray`` module; a one-line ``UsageError`` (exit 2) saying what to install when it
    is not installed."""
    try:
        import ray
    except ImportError:
        raise UsageError(f"--executor ray needs the ray package: {INSTALL_HINT}") from None
    return ray


@dataclass(frozen=True)
class ClusterOptions:
    """Where and with what resources the jobs run (nothing here is in a key)."""

    address: str | None = None  # None: $RAY_ADDRESS, else a new local cluster
    gpus_per_job: float = 0.0  # GPUs reserved by each inversion and drag job
    cpus_per_job: float = 1.0  # CPUs reserved by each job (= its torch threads, at least 1)
    max_retries: int = 3  # Ray restarts a job whose worker process died this many times

    def __post_init__(self) -> None:
        if self.gpus_per_job < 0:
            raise UsageError(f"--gpus-per-job must be >= 0, got {self.gpus_per_job:g}")
        if self.cpus_per_job <= 0:
            raise UsageError(f"--cpus-per-job must be > 0, got {self.cpus_per_job:g}")

    @property
    def threads(self) -> int:
        """torch threads of a job: its CPUs, at least one."""
        return max(1, int(self.cpus_per_job))


__all__ = ["INSTALL_HINT", "ClusterOptions", "require_ray"]
