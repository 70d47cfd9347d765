"""Workers' progress replayed on the driver's terminal (``pipeline.cluster.events``), without
Ray: what ``RemoteDisplay`` sends (a bar's steps coalesced, messages at once) and what
``ProgressRelay`` makes of it on a rich display: one bar per running job, side by side, the
stage's end line with its metrics, and a job restarted by Ray warned of with its old bar
dropped. (tests/test_cluster_ray.py checks the same lines through a real cluster, without
a terminal.)"""

from __future__ import annotations

import io

from pipeline.cluster.events import Batch, Event, ProgressRelay, RemoteDisplay
from pipeline.progress import Display


def _worker(batches: list[Batch], ticket: str, attempt: str) -> RemoteDisplay:
    """A worker's display whose batches land in ``batches`` (as the sink actor keeps them)."""

    def send(events: list[Event], wait: bool) -> None:
        batches.append((ticket, attempt, list(events)))

    display = RemoteDisplay(send, interval=3600.0)  # only urgent events and flushes send
    display.emit(("start", f"pid {attempt} on node"), urgent=True)
    return display


def _bars(display: Display) -> list[tuple[str, float, float | None, str]]:
    assert display.rich is not None
    return sorted(
        (str(task.description), task.completed, task.total, task.fields["live"])
        for task in display.rich.tasks
    )


def test_two_jobs_show_two_bars_and_a_restarted_job_is_said_and_its_bar_dropped():
    stream = io.StringIO()
    batches: list[Batch] = []
    with Display(0, stream=stream, tty=True) as display:
        relay = ProgressRelay(display, lambda ticket: f"{ticket.replace('/', ' ')}")
        one = _worker(batches, "hopper/invert", "11")
        two = _worker(batches, "mirror/invert", "22")
        tune_one = one.stage("hopper tune", 12)
        tune_two = two.stage("mirror tune", 12)
        for step in range(1, 5):
            tune_one.update(step, 12, lpips=0.5 / step)
        tune_two.update(3, 12, lpips=0.25)
        one.flush()
        two.flush()
        updates = [e for _, _, events in batches for e in events if e[0] == "update"]
        assert [e[2] for e in updates] == [4, 3]  # only the newest step of a bar went out

        relay.apply(batches)
        batches.clear()
        assert _bars(display) == [
            ("hopper tune", 4, 12, "lpips 0.125"),
            ("mirror tune", 3, 12, "lpips 0.25"),
        ]

        tune_one.close("final LPIPS 0.1")
        one.info("hopper invert: done")
        relay.apply(batches)
        batches.clear()
        assert _bars(display) == [("mirror tune", 3, 12, "lpips 0.25")]

        # Ray starts mirror's job again in another process: its old bar goes, a warning says
        again = _worker(batches, "mirror/invert", "33")
        again.stage("mirror tune", 12).update(4, 12, lpips=0.2)
        again.flush()
        relay.apply(batches)
        assert _bars(display) == [("mirror tune", 4, 12, "lpips 0.2")]
        relay.finished("mirror/invert")
        assert _bars(display) == []
        relay.close()
    text = " ".join(stream.getvalue().split())  # the console wraps long lines
    assert "hopper tune: done in 0s (4 steps), final LPIPS 0.1" in text
    assert "hopper invert: done" in text
    assert (
        "warning: mirror invert: the worker computing it (pid 22 on node) was lost; "
        "Ray started it again on pid 33 on node"
    ) in text
