"""The editor's background work: one worker thread, jobs with event streams, one job per face.

The page asks for work (open a photo, invert a face, drag, save) and gets a ``Work`` item
at once; the worker thread runs the items one after the other (the store is written by one
thread only, and a CPU gains nothing from two drags at once). A face with an item queued
or running refuses another (``FaceBusy``, HTTP 409): one job per face at a time.

Each item has an append-only list of events (progress of a loop: step, total, loss,
distance, elapsed, ETA; a drag frame as a PNG data URL; log lines; the end with its result
or error) that the page reads as a server-sent event stream (``events_since`` blocks until
there is something new). Only the newest frame keeps its image: a page that connects late
gets the current picture, and memory stays bounded on long drags. ``stop()`` asks the item
to stop; the loops see it at their next step.

``EventDisplay`` is the ``pipeline.progress.Display`` the stages report to while an item
runs: its progress bars become events.
"""

from __future__ import annotations

import io
import itertools
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from pipeline.errors import PipelineError
from pipeline.progress import Display


class FaceBusy(PipelineError):
    """The face already has a job queued or running."""


class Stopped(PipelineError):
    """The page stopped a job that has no partial result to show (an inversion: its
    checkpoint stays, the next Invert resumes it)."""


class Work:
    """One job for the worker (see the module docstring)."""

    def __init__(self, number: int, kind: str, face: tuple[str, int] | None):
        self.id = f"{number}"
        self.kind = kind
        self.face = face
        self.events: list[dict[str, Any]] = []
        self.done = False
        self.stop_requested = threading.Event()
        self.listeners: list[Callable[[dict[str, Any]], None]] = []
        self._changed = threading.Condition()
        self._last_frame: int | None = None

    def emit(self, kind: str, **data: Any) -> None:
        """Append an event (called from the worker thread)."""
        event = {"type": kind, **data}
        with self._changed:
            event["seq"] = len(self.events)
            if kind == "frame":
                if self._last_frame is not None:  # keep only the newest frame's image
                    self.events[self._last_frame] = {**self.events[self._last_frame], "image": None}
                self._last_frame = event["seq"]
            self.events.append(event)
            if kind in ("done", "failed"):
                self.done = True
            self._changed.notify_all()
        for listener in list(self.listeners):
            listener(event)

    def events_since(self, seq: int, timeout: float) -> list[dict[str, Any]]:
        """The events from number ``seq`` on, waiting up to ``timeout`` s for one."""
        with self._changed:
            if len(self.events) <= seq and not self.done:
                self._changed.wait(timeout)
            return self.events[seq:]

    def stop(self) -> None:
        self.stop_requested.set()

    @property
    def result(self) -> dict[str, Any] | None:
        """The payload of the 'done' event, or None."""
        for event in reversed(self.events):
            if event["type"] == "done":
                return event.get("result")
        return None

    @property
    def error(self) -> str | None:
        for event in reversed(self.events):
            if event["type"] == "failed":
                return str(event.get("message"))
        return None


class Worker:
    """Runs ``Work`` items one at a time in a daemon thread."""

    def __init__(self) -> None:
        self._queue: queue.Queue[tuple[Work, Callable[[Work], dict[str, Any]]] | None] = (
            queue.Queue()
        )
        self._numbers = itertools.count(1)
        self._lock = threading.Lock()
        self._busy: set[tuple[str, int]] = set()
        self.items: dict[str, Work] = {}
        self.closing = False
        self._thread = threading.Thread(target=self._loop, name="dragpipe-edit-worker", daemon=True)
        self._thread.start()

    def submit(
        self, kind: str, face: tuple[str, int] | None, run: Callable[[Work], dict[str, Any]]
    ) -> Work:
        """Queue ``run(work) -> result`` for ``face`` ((photo id, face index) or None);
        ``FaceBusy`` when that face has a job queued or running."""
        with self._lock:
            if face is not None and face in self._busy:
                raise FaceBusy(
                    f"face {face[1]} of photo {face[0]!r} has a job running: wait for it or "
                    "stop it first"
                )
            work = Work(next(self._numbers), kind, face)
            if face is not None:
                self._busy.add(face)
            self.items[work.id] = work
        self._queue.put((work, run))
        return work

    def close(self) -> None:
        """Stop every item and end the thread after the current one."""
        self.closing = True
        for work in list(self.items.values()):
            work.stop()
        self._queue.put(None)

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    def _loop(self) -> None:
        while True:
            entry = self._queue.get()
            if entry is None:
                return
            work, run = entry
            try:
                if work.stop_requested.is_set():
                    raise Stopped(f"{work.kind} stopped before it started")
                result = run(work)
            except Exception as exc:  # every failure goes to the page, one line
                known = isinstance(exc, PipelineError) or type(exc).__module__.startswith(
                    ("draggan", "inversion")
                )
                message = str(exc) if known else f"internal error: {type(exc).__name__}: {exc}"
                work.emit("failed", message=message, stopped=isinstance(exc, Stopped))
            else:
                work.emit("done", result=result)
            finally:
                if work.face is not None:
                    with self._lock:
                        self._busy.discard(work.face)


class _EventProgress:
    """A ``StageProgress`` look-alike that turns updates into 'progress' events."""

    def __init__(self, display: EventDisplay, label: str, total: int | None):
        self.display = display
        self.label = label
        self.total = total
        self.start = time.monotonic()
        self.step = 0
        display.work.emit("progress", label=label, step=0, total=total, live={}, eta=None)

    def update(self, step: int, total: int | None = None, **live: float) -> None:
        self.step = step
        if total is not None:
            self.total = total
        elapsed = time.monotonic() - self.start
        eta = elapsed / step * (self.total - step) if self.total and step else None
        self.display.work.emit(
            "progress",
            label=self.label,
            step=step,
            total=self.total,
            live={k: float(v) for k, v in live.items()},
            elapsed=round(elapsed, 2),
            eta=None if eta is None else round(eta, 1),
        )
        if self.display.stoppable and self.display.work.stop_requested.is_set():
            raise Stopped(f"{self.label}: stopped at step {step}; its checkpoint is kept")

    def close(self, note: str = "") -> float:
        elapsed = time.monotonic() - self.start
        self.display.work.emit("stage_done", label=self.label, seconds=round(elapsed, 2))
        return elapsed

    def __enter__(self) -> _EventProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


class EventDisplay(Display):
    """Where the stages report while a ``Work`` item runs: progress and messages become its
    events. ``stoppable``: a stop request ends the loop at its next progress update (for
    inversions; drags stop through the context's watch instead)."""

    def __init__(self, work: Work, stoppable: bool):
        super().__init__(0, stream=io.StringIO(), tty=False)
        self.work = work
        self.stoppable = stoppable

    def line(self, text: str) -> None:
        self.work.emit("log", text=text)

    def stage(self, label: str, total: int | None = None) -> _EventProgress:  # type: ignore[override]
        return _EventProgress(self, label, total)
