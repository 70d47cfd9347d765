"""Leases: one owner at a time for a name on storage that several machines share.

``fcntl`` locks are not dependable on network filesystems (NFS needs a working lock
daemon, many FUSE and SMB mounts ignore them, and a lock held by a machine that crashed can
linger), so a lease is a plain file whose existence is the claim:

- **Claim**: ``open(path, O_CREAT | O_EXCL)``, atomic on local filesystems and on NFS v3+
  (the server decides), then the holder writes who it is: host, machine identity, pid,
  process start time, a random token, the run it works for and a renewal counter.
- **Renewal**: while held, a background thread rewrites the file (``atomic_write``) every
  ``ttl / 4`` seconds with the counter increased. Before each renewal it checks that the
  file still names its token; if not, the lease was lost (taken over) and ``check()``
  raises ``LeaseLost`` so the holder stops before it writes anything more.
- **Staleness**: a holder on THIS machine (same host name, boot and pid namespace) is alive
  exactly when its process (pid and start time) still runs: a killed holder is taken over at
  once, a live one is never taken over however long it pauses. A holder on another machine
  is stale when its file has not changed for ``ttl`` seconds as measured by the waiting
  process's own monotonic clock (no clock is compared between machines).
- **Takeover**: the waiter renames the stale file to a private name (atomic), checks that
  what it moved is exactly the content it judged stale (if the holder renewed in between,
  it puts the file back with ``link``, which refuses to replace a newer claim), deletes it
  and claims the name with ``O_EXCL`` like anyone else: among several waiters exactly one
  wins. ``taken_over`` tells the winner whose claim it replaced (a retried job learns that
  the earlier attempt was its own run's).

What holds: two live processes never both believe they hold a lease, except when a holder
on another machine stalls for longer than ``ttl`` (suspended VM, hung mount); it then loses
the lease at its next renewal or ``check()``, and ``check()`` runs before every checkpoint
and before a result is published.
"""

from __future__ import annotations

import functools
import json
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from draggan.atomic_write import atomic_write
from pipeline.errors import PipelineError

LEASE_TTL = 30.0  # seconds without renewal after which a remote holder counts as gone
UNREADABLE_GRACE = 2.0  # a file without a valid record (being written, or garbage)


class LeaseBusy(PipelineError):
    """The lease is held by someone else and waiting was not allowed (exit code 1)."""


class LeaseLost(PipelineError):
    """A held lease was taken over by another process (this holder stalled too long)."""


def _read_first_line(path: str) -> str:
    try:
        with open(path) as handle:
            return handle.readline().strip()
    except OSError:
        return ""


@functools.cache
def machine_identity() -> str:
    """Host name + boot id + pid namespace: two processes with the same identity can see
    each other's pids (so liveness is checked by pid, not by time)."""
    boot = _read_first_line("/proc/sys/kernel/random/boot_id")
    try:
        namespace = os.readlink("/proc/self/ns/pid")
    except OSError:
        namespace = ""
    return f"{socket.gethostname()}|{boot}|{namespace}"


def process_start(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (Linux), None where unknown."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            fields = handle.read().rpartition(")")[2].split()
    except OSError:
        return None
    # fields[0] is field 3 of proc_pid_stat(5) (the state), so field 22 is fields[19]
    return int(fields[19]) if len(fields) > 19 and fields[0] not in ("Z", "X") else None


def process_alive(pid: int, start: int | None) -> bool:
    """Whether process ``pid`` (started at ``start`` ticks, if known) still runs here."""
    if os.path.isdir("/proc/self"):
        now = process_start(pid)
        return now is not None and (start is None or now == start)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass(frozen=True)
class Holder:
    """Who holds a lease, as its file says."""

    host: str
    machine: str  # ``machine_identity()`` of the holder
    pid: int
    start: int | None  # process start ticks (Linux), to tell a reused pid
    token: str
    since: float  # wall-clock time of the claim (for messages only)
    run: str | None  # the run the holder works for (the run lock's token)

    @classmethod
    def parse(cls, raw: bytes) -> Holder | None:
        try:
            data = json.loads(raw)
            return cls(
                host=str(data["host"]),
                machine=str(data["machine"]),
                pid=int(data["pid"]),
                start=None if data.get("start") is None else int(data["start"]),
                token=str(data["token"]),
                since=float(data["since"]),
                run=None if data.get("run") is None else str(data["run"]),
            )
        except (ValueError, KeyError, TypeError):
            return None

    @property
    def local(self) -> bool:
        """On this machine (its pid can be checked)."""
        return self.machine == machine_identity()

    def alive(self) -> bool:
        """Only meaningful when ``local``."""
        return process_alive(self.pid, self.start)

    def describe(self) -> str:
        since = time.strftime("%H:%M:%S", time.localtime(self.since))
        return f"pid {self.pid} on {self.host} (since {since})"


class Lease:
    """An exclusive lease on ``path`` (see the module docstring); a context manager.

    ``acquire(timeout, on_wait)``: ``timeout`` None waits as long as it takes, 0 fails at
    once, otherwise seconds; ``on_wait(holder description)`` is called once when busy.
    """

    def __init__(
        self,
        path: Path,
        ttl: float = LEASE_TTL,
        run: str | None = None,
        what: str = "the lease",
        poll: float = 0.2,
    ) -> None:
        self.path = Path(path)
        self.ttl = float(ttl)
        self.run = run
        self.what = what
        self.poll = poll
        self.token = secrets.token_hex(8)
        self.taken_over: Holder | None = None  # the stale claim this lease replaced
        self._held = False
        self._lost: str | None = None
        self._beat = 0
        self._seen: tuple[bytes, float] | None = None  # (content, first seen, monotonic)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._since = 0.0

    # Reading ------------------------------------------------------------------------------
    def _read(self) -> bytes | None:
        try:
            return self.path.read_bytes()
        except FileNotFoundError:
            return None

    def holder(self) -> Holder | None:
        """The current holder as its file says (None: free or unreadable)."""
        raw = self._read()
        return None if raw is None else Holder.parse(raw)

    def describe_holder(self) -> str:
        holder = self.holder()
        if holder is None:
            return "another process"
        text = holder.describe()
        if not holder.local:
            text += f"; taken over if it is not renewed for {self.ttl:.0f} s"
        return text

    def _stale(self, raw: bytes) -> bool:
        """Whether the claim with content ``raw`` is dead (see the module docstring)."""
        holder = Holder.parse(raw)
        if holder is not None and holder.local:
            return not holder.alive()
        now = time.monotonic()
        if self._seen is None or self._seen[0] != raw:
            self._seen = (raw, now)
            return False
        limit = self.ttl if holder is not None else min(self.ttl, UNREADABLE_GRACE)
        return now - self._seen[1] >= limit

    # Claiming -----------------------------------------------------------------------------
    def _record(self) -> bytes:
        return json.dumps(
            {
                "host": socket.gethostname(),
                "machine": machine_identity(),
                "pid": os.getpid(),
                "start": process_start(os.getpid()),
                "token": self.token,
                "since": self._since,
                "run": self.run,
                "beat": self._beat,
            },
            sort_keys=True,
        ).encode()

    def _claim(self) -> bool:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._since = time.time()
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return False
        try:
            os.write(fd, self._record())
            os.fsync(fd)
        finally:
            os.close(fd)
        return True

    def _take_over(self, raw: bytes) -> None:
        """Remove the stale claim whose content is ``raw`` unless it changed meanwhile."""
        grave = self.path.with_name(f".{self.path.name}.stale-{self.token}")
        try:
            os.rename(self.path, grave)
        except FileNotFoundError:
            return  # another waiter removed it first
        moved = grave.read_bytes()
        if moved != raw:  # renewed (or re-claimed) between our read and the rename
            try:
                os.link(grave, self.path)
            except FileExistsError:
                pass  # a newer claim is in place; the one we moved has lost its lease
            except OSError:  # no hard links on this filesystem
                if not self.path.exists():
                    os.rename(grave, self.path)
            grave.unlink(missing_ok=True)
            return
        grave.unlink(missing_ok=True)
        self.taken_over = Holder.parse(raw)

    def try_acquire(self) -> bool:
        """Claim the lease if it is free or stale; True when held."""
        if self._held:
            return True
        for _ in range(3):  # a takeover makes the name free: claim it (or lose the race)
            if self._claim():
                self._start()
                return True
            raw = self._read()
            if raw is None:
                continue  # released between our attempt and the read
            if not self._stale(raw):
                return False
            self._take_over(raw)
        return False

    def acquire(
        self, timeout: float | None = None, on_wait: Callable[[str], None] | None = None
    ) -> None:
        start = time.monotonic()
        told = False
        while not self.try_acquire():
            if timeout is not None and time.monotonic() - start >= timeout:
                raise LeaseBusy(f"{self.what} is in use by {self.describe_holder()}")
            if not told and on_wait is not None:
                on_wait(self.describe_holder())
                told = True
            time.sleep(self.poll)

    # Holding ------------------------------------------------------------------------------
    def _start(self) -> None:
        self._held = True
        self._lost = None
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._renew_loop, name=f"lease {self.path.name}", daemon=True
        )
        self._thread.start()

    def _renew_loop(self) -> None:
        while not self._stop.wait(self.ttl / 4):
            try:
                self.renew()
            except LeaseLost:
                return
            except OSError:
                continue  # storage hiccup: try again at the next beat

    def renew(self) -> None:
        """Rewrite the claim (counter + 1) after checking it is still ours."""
        holder = self.holder()
        if holder is None or holder.token != self.token:
            self._lost = holder.describe() if holder is not None else "nobody (file removed)"
            raise LeaseLost(self._lost_message())
        self._beat += 1
        with atomic_write(self.path) as tmp:
            tmp.write_bytes(self._record())

    def _lost_message(self) -> str:
        return (
            f"{self.what} was taken over by {self._lost} while this process held it "
            f"(it stalled for more than {self.ttl:.0f} s); stopping"
        )

    @property
    def held(self) -> bool:
        return self._held

    def check(self) -> None:
        """Raise ``LeaseLost`` when the lease is no longer ours (checked on the file)."""
        if not self._held:
            return
        if self._lost is None:
            holder = self.holder()
            if holder is None or holder.token != self.token:
                self._lost = holder.describe() if holder is not None else "nobody (removed)"
        if self._lost is not None:
            raise LeaseLost(self._lost_message())

    def release(self) -> None:
        """Stop renewing and remove the claim (only if it is still ours)."""
        if not self._held:
            return
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self._held = False
        holder = self.holder()
        if holder is not None and holder.token == self.token:
            self.path.unlink(missing_ok=True)

    def __enter__(self) -> Lease:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def read_holder(path: Path) -> Holder | None:
    """The holder named in the lease file ``path`` (None: free or unreadable)."""
    try:
        return Holder.parse(Path(path).read_bytes())
    except OSError:
        return None
