"""Progress of jobs computed on cluster workers, shown by the driver as a local run shows it.

The stages report through a ``Display`` (``info``/``warn``/``detail`` lines and
``stage(label, total)`` progress bars). On a worker the display is a ``RemoteDisplay``: it
turns every call into a small event and sends batches of them to an ``EventSink`` actor,
at most every ``interval`` seconds (a step's update replaces the previous one still
waiting to go), messages and bar starts at once, and everything before the job returns.
The driver drains the sink and replays the events on its own ``Display`` with
``ProgressRelay``: the same rich bars, the same per-stage lines with their metrics.

Events (plain tuples, cheap to pickle):
``("start", where)`` an attempt at the job began on ``where`` (pid and host);
``("info" | "warn" | "detail" | "line", text)``;
``("open", n, label, total)``, ``("update", n, step, total, live)``, ``("close", n, note)``,
``("drop", n)`` (a bar left by an exception) for the attempt's n-th progress bar.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from typing import Any

from pipeline.progress import Display, StageProgress

Event = tuple[Any, ...]
Batch = tuple[str, str, list[Event]]  # (ticket: which job, attempt, events)
Sender = Callable[[list[Event], bool], None]  # (events, wait until delivered)


class EventSink:
    """The actor between the workers and the driver (``ray.remote(num_cpus=0)``): workers
    ``push`` batches, the driver ``drain``s them in arrival order."""

    def __init__(self) -> None:
        self._batches: list[Batch] = []

    def push(self, ticket: str, attempt: str, events: list[Event]) -> None:
        self._batches.append((ticket, attempt, events))

    def drain(self) -> list[Batch]:
        batches, self._batches = self._batches, []
        return batches


class RemoteStage:
    """A progress bar of a stage running on a worker (``StageProgress``'s interface)."""

    def __init__(self, display: RemoteDisplay, number: int, label: str, total: int | None):
        self.display = display
        self.number = number
        self.label = label
        self.total = total
        self.step = 0
        self.live: dict[str, float] = {}
        self.start = time.monotonic()
        self._open = True

    def update(self, step: int, total: int | None = None, **live: float) -> None:
        self.step = step
        if total is not None:
            self.total = total
        self.live = {name: float(value) for name, value in live.items()}
        self.display.emit(("update", self.number, step, self.total, self.live))

    def close(self, note: str = "") -> float:
        self._open = False
        self.display.emit(("close", self.number, note), urgent=True)
        return time.monotonic() - self.start

    def __enter__(self) -> RemoteStage:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._open:
            self._open = False
            self.display.emit(("drop", self.number), urgent=True)


class RemoteDisplay(Display):
    """A worker's display: every message and progress record goes to the driver."""

    def __init__(self, send: Sender, verbosity: int = 0, interval: float = 0.25):
        super().__init__(verbosity, stream=io.StringIO(), tty=False)
        self.send = send
        self.interval = interval
        self._buffer: list[Event] = []
        self._last_send = 0.0
        self._bars = 0

    def emit(self, event: Event, urgent: bool = False) -> None:
        last = self._buffer[-1] if self._buffer else None
        if event[0] == "update" and last is not None and last[:2] == event[:2]:
            self._buffer[-1] = event  # only the newest step of a bar is worth sending
        else:
            self._buffer.append(event)
        if urgent or time.monotonic() - self._last_send >= self.interval:
            self.flush()

    def flush(self, wait: bool = False) -> None:
        """Send what is buffered (``wait``: until the sink has it)."""
        if self._buffer:
            events, self._buffer = self._buffer, []
            self._last_send = time.monotonic()
            self.send(events, wait)

    def line(self, text: str) -> None:
        self.emit(("line", text), urgent=True)

    def info(self, text: str) -> None:
        self.emit(("info", text), urgent=True)

    def detail(self, text: str) -> None:
        self.emit(("detail", text), urgent=True)

    def warn(self, text: str) -> None:
        self.emit(("warn", text), urgent=True)

    def stage(self, label: str, total: int | None = None) -> RemoteStage:  # type: ignore[override]
        self._bars += 1
        self.emit(("open", self._bars, label, total), urgent=True)
        return RemoteStage(self, self._bars, label, total)


class ProgressRelay:
    """Replays the workers' events on the driver's ``display``.

    ``describe(ticket)`` names a job in messages. A job whose events start coming from a
    new attempt lost its previous worker (Ray started it again): its bars are dropped and
    a warning says so. ``finished(ticket)`` drops whatever bars a job left open."""

    def __init__(self, display: Display, describe: Callable[[str], str]):
        self.display = display
        self.describe = describe
        self._bars: dict[tuple[str, int], StageProgress] = {}
        self._attempts: dict[str, tuple[str, str]] = {}  # ticket -> (attempt, where)

    def apply(self, batches: list[Batch]) -> None:
        for ticket, attempt, events in batches:
            for event in events:
                self._apply(ticket, attempt, event)

    def _apply(self, ticket: str, attempt: str, event: Event) -> None:
        kind = event[0]
        display = self.display
        if kind == "start":
            previous = self._attempts.get(ticket)
            if previous is not None and previous[0] != attempt:
                self._drop(previous[0])
                display.warn(
                    f"{self.describe(ticket)}: the worker computing it ({previous[1]}) was "
                    f"lost; Ray started it again on {event[1]}"
                )
            self._attempts[ticket] = (attempt, event[1])
        elif kind in ("info", "warn", "detail", "line"):
            getattr(display, kind)(event[1])
        elif kind == "open":
            self._bars[(attempt, event[1])] = display.stage(event[2], event[3])
        elif kind == "update":
            bar = self._bars.get((attempt, event[1]))
            if bar is not None:
                bar.update(event[2], event[3], **event[4])
        elif kind == "close":
            bar = self._bars.pop((attempt, event[1]), None)
            if bar is not None:
                bar.close(event[2])
        elif kind == "drop":
            bar = self._bars.pop((attempt, event[1]), None)
            if bar is not None:
                bar.__exit__(None, None, None)

    def _drop(self, attempt: str) -> None:
        for key in [key for key in self._bars if key[0] == attempt]:
            self._bars.pop(key).__exit__(None, None, None)

    def finished(self, ticket: str) -> None:
        """The job's task has ended (done, failed or cancelled)."""
        previous = self._attempts.pop(ticket, None)
        if previous is not None:
            self._drop(previous[0])

    def close(self) -> None:
        for bar in self._bars.values():
            bar.__exit__(None, None, None)
        self._bars.clear()
