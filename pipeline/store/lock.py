"""The workdir run lock: one writer at a time, never blocked by a dead process.

``fcntl.flock`` on ``<workdir>/lock``: the kernel drops the lock when the holding process
exits or is killed, so a lock left behind by a crashed or SIGKILLed run never blocks the
next one (the file stays, the lock does not). The holder writes its pid, host and start
time into the file so a waiting run can say who it is waiting for.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from collections.abc import Callable
from pathlib import Path

from pipeline.errors import PipelineError

LOCK_NAME = "lock"


class LockBusy(PipelineError):
    """Another run holds the workdir lock (exit code 1)."""


class RunLock:
    """Exclusive lock on a workdir (a context manager).

    ``timeout``: None waits as long as it takes, 0 fails at once, otherwise seconds.
    ``on_wait(holder)`` is called once when the lock is busy, with the holder's description.
    """

    def __init__(
        self,
        root: Path,
        timeout: float | None = None,
        on_wait: Callable[[str], None] | None = None,
        poll: float = 0.2,
    ):
        self.path = Path(root) / LOCK_NAME
        self.timeout = timeout
        self.on_wait = on_wait
        self.poll = poll
        self._fd: int | None = None

    def holder(self) -> str:
        """Who holds the lock, in words (from the file's contents)."""
        try:
            info = json.loads(self.path.read_text() or "{}")
            return (
                f"pid {info['pid']} on {info['host']} "
                f"(since {time.strftime('%H:%M:%S', time.localtime(info['since']))})"
            )
        except (OSError, ValueError, KeyError, TypeError):
            return "another process"

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        start = time.monotonic()
        told = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                waited = time.monotonic() - start
                if self.timeout is not None and waited >= self.timeout:
                    os.close(fd)
                    raise LockBusy(
                        f"workdir {self.path.parent} is in use by {self.holder()}; "
                        "wait for that run to finish or use another --workdir"
                    ) from None
                if not told and self.on_wait is not None:
                    self.on_wait(self.holder())
                    told = True
                time.sleep(self.poll)
            except BaseException:
                os.close(fd)
                raise
        info = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.time()}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
