"""Leases (pipeline/store/lease.py): exclusive claims that hold on shared storage without
fcntl; a dead holder on this machine is taken over at once, one on another machine once
its lease is not renewed for ``ttl``; among several waiters exactly one wins; a holder that
lost its lease is told before it writes again."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from pipeline.store import KeyMaterial, LeaseLost, Ref, Store
from pipeline.store.lease import Lease, LeaseBusy, machine_identity, read_holder


def _foreign(path, token="far", beat=0) -> bytes:
    """A claim written by a process on another machine."""
    record = {
        "host": "elsewhere",
        "machine": "elsewhere|boot|pid:[1]",
        "pid": 4242,
        "start": 1,
        "token": token,
        "since": time.time(),
        "run": "their-run",
        "beat": beat,
    }
    raw = json.dumps(record).encode()
    path.write_bytes(raw)
    return raw


def test_a_lease_is_exclusive_and_released(tmp_path):
    path = tmp_path / "lease"
    first, second = Lease(path), Lease(path)
    assert first.try_acquire()
    assert read_holder(path).token == first.token and read_holder(path).local
    assert not second.try_acquire()  # a live holder here is never taken over
    with pytest.raises(LeaseBusy, match="in use by pid"):
        second.acquire(timeout=0.3)
    first.release()
    assert not path.exists()
    assert second.try_acquire() and second.taken_over is None
    second.release()


_HOLD = textwrap.dedent(
    """
    import sys, time
    from pipeline.store.lease import Lease
    lease = Lease(sys.argv[1], run="run-1"); lease.acquire()
    print("held", flush=True)
    time.sleep(60)
    """
)


def test_a_killed_holder_on_this_machine_is_taken_over_at_once(tmp_path):
    path = tmp_path / "lease"
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD, str(path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        assert not Lease(path).try_acquire()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    lease = Lease(path, ttl=3600)  # no waiting for a timeout: the pid is gone
    assert lease.try_acquire()
    assert lease.taken_over.pid == holder.pid and lease.taken_over.run == "run-1"
    lease.release()


def test_a_holder_on_another_machine_is_stale_only_after_ttl_without_renewal(tmp_path):
    path = tmp_path / "lease"
    _foreign(path)
    lease = Lease(path, ttl=0.6)
    assert not lease.try_acquire()  # first sight starts the waiter's own clock
    time.sleep(0.3)
    assert not lease.try_acquire()
    time.sleep(0.4)
    assert lease.try_acquire() and lease.taken_over.host == "elsewhere"
    assert read_holder(path).token == lease.token
    lease.release()


def test_a_renewing_holder_on_another_machine_keeps_its_lease(tmp_path):
    path = tmp_path / "lease"
    _foreign(path)
    stop = threading.Event()

    def renew() -> None:
        beat = 0
        while not stop.wait(0.1):
            beat += 1
            _foreign(path, beat=beat)

    renewer = threading.Thread(target=renew)
    renewer.start()
    try:
        lease = Lease(path, ttl=0.5)
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline:
            assert not lease.try_acquire()
            time.sleep(0.05)
    finally:
        stop.set()
        renewer.join()


def test_an_unreadable_claim_is_taken_over_after_a_short_grace(tmp_path):
    path = tmp_path / "lock"
    path.write_bytes(b"")  # e.g. left by an older dragpipe, or a claim cut short
    lease = Lease(path, ttl=0.3)
    assert not lease.try_acquire()
    time.sleep(0.4)
    assert lease.try_acquire()
    lease.release()


def test_among_waiters_for_a_stale_lease_exactly_one_wins(tmp_path):
    path = tmp_path / "lease"
    _foreign(path)
    leases = [Lease(path, ttl=0.3, poll=0.01) for _ in range(8)]
    start = threading.Barrier(len(leases))
    won: list[Lease] = []

    def contend(lease: Lease) -> None:
        start.wait()
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            if lease.try_acquire():
                won.append(lease)
                return
            time.sleep(0.01)

    threads = [threading.Thread(target=contend, args=(lease,)) for lease in leases]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(won) == 1
    assert read_holder(path).token == won[0].token
    won[0].release()


def test_renewal_rewrites_the_claim_and_a_lost_lease_is_reported(tmp_path):
    path = tmp_path / "lease"
    lease = Lease(path, ttl=0.2)  # renews every 0.05 s
    lease.acquire()
    first = path.read_bytes()
    time.sleep(0.3)
    assert path.read_bytes() != first and read_holder(path).token == lease.token
    lease.check()
    lease.release()
    assert not path.exists()
    # Lost: a lease that is not renewing at that moment (a renewal that read its own claim
    # just before the foreign one was written would put its own back, as a holder stalled
    # for longer than ttl may: the exception the module docstring states).
    lease = Lease(path, ttl=600)
    lease.acquire()
    _foreign(path, token="usurper")  # e.g. taken over while this process was suspended
    with pytest.raises(LeaseLost, match="taken over by pid 4242 on elsewhere"):
        lease.check()
    lease.release()
    assert read_holder(path).token == "usurper"  # release never removes another's claim


def test_a_pending_result_stops_writing_once_its_lease_is_lost(tmp_path):
    store = Store(tmp_path)
    material = KeyMaterial(stage="align", version=1, params={"x": 1})
    ref = Ref(material.stage, material.key)
    lease = store.job_lease(ref)
    lease.acquire()
    pending = store.begin(material, guard=lease.check)
    pending.save_checkpoint("loop", {}, {"step": 1})
    _foreign(lease.path, token="usurper")
    with pytest.raises(LeaseLost):
        pending.save_checkpoint("loop", {}, {"step": 2})
    pending.file("out.txt").write_text("x")
    with pytest.raises(LeaseLost):
        pending.commit()
    assert not store.exists(ref.stage, ref.key)
    lease.release()


def test_machine_identity_names_this_host():
    import socket

    assert machine_identity().startswith(socket.gethostname() + "|")
