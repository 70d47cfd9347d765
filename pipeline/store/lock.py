"""The workdir run lock: one run at a time per workdir, also across machines.

A ``Lease`` (``pipeline.store.lease``) on ``<workdir>/lock``: created with ``O_EXCL``,
renewed while the run lasts, never ``fcntl`` (unreliable on network filesystems, where a
workdir shared by a Ray cluster lives). A holder killed on this machine is taken over at
once (its pid is gone); a holder on another machine once its lease has not been renewed for
``ttl`` seconds. Every run (local or on a cluster), ``clean`` and the cluster's workers use
it, so two drivers on one workdir take turns (or the second fails at once with
``--no-wait``). The lease's token names the run: a cluster worker checks that the workdir it
sees is locked by the run that sent it the job (same shared storage, same run).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from pipeline.store.lease import LEASE_TTL, Holder, Lease, LeaseBusy, LeaseLost, read_holder

LOCK_NAME = "lock"

__all__ = ["LOCK_NAME", "LeaseLost", "LockBusy", "RunLock", "run_holder"]


class LockBusy(LeaseBusy):
    """Another run holds the workdir lock (exit code 1)."""


def run_holder(root: Path) -> Holder | None:
    """Who holds the run lock of workdir ``root`` (None: nobody, or unreadable)."""
    return read_holder(Path(root) / LOCK_NAME)


class RunLock:
    """Exclusive lock on a workdir (a context manager).

    ``timeout``: None waits as long as it takes, 0 fails at once, otherwise seconds.
    ``on_wait(holder)`` is called once when the lock is busy, with the holder's description.
    ``token`` identifies the run while the lock is held.
    """

    def __init__(
        self,
        root: Path,
        timeout: float | None = None,
        on_wait: Callable[[str], None] | None = None,
        poll: float = 0.2,
        ttl: float = LEASE_TTL,
    ):
        self.path = Path(root) / LOCK_NAME
        self.timeout = timeout
        self.on_wait = on_wait
        self.lease = Lease(self.path, ttl=ttl, what=f"workdir {self.path.parent}", poll=poll)

    @property
    def token(self) -> str:
        return self.lease.token

    def holder(self) -> str:
        """Who holds the lock, in words (from the file's contents)."""
        return self.lease.describe_holder()

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.lease.acquire(self.timeout, self.on_wait)
        except LeaseBusy as exc:
            raise LockBusy(f"{exc}; wait for that run to finish or use another --workdir") from None

    def check(self) -> None:
        """``LeaseLost`` when another run took the lock over (this one stalled too long)."""
        self.lease.check()

    def release(self) -> None:
        self.lease.release()

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
