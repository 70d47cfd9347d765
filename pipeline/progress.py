"""Progress display for runs: rich bars on a terminal, plain periodic log lines otherwise.

Library code never prints; the stages turn the libraries' callback records into
``StageProgress.update`` calls and this module decides how they look:

- on a terminal (stderr is a TTY): one rich progress bar per running stage with the step
  count, elapsed time, ETA and the live values (loss, distance);
- otherwise (logs, CI, pipes): a line when a stage starts, then at most one line every
  ``log_interval`` seconds (2 s with ``-v``), then a line when it ends;
- ``-q``: no progress and no informational lines, only warnings, errors and results.
"""

from __future__ import annotations

import sys
import time
from typing import IO

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


def _format_live(live: dict[str, float]) -> str:
    parts = []
    for name, value in live.items():
        if isinstance(value, float):
            parts.append(f"{name} {value:.4g}")
        else:
            parts.append(f"{name} {value}")
    return "  ".join(parts)


def _format_seconds(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.0f}s"
    minutes, sec = divmod(int(seconds + 0.5), 60)
    if minutes < 60:
        return f"{minutes}m{sec:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


class StageProgress:
    """Progress of one stage's loop; ``update`` as steps complete, ``close`` at the end."""

    def __init__(self, display: Display, label: str, total: int | None):
        self.display = display
        self.label = label
        self.total = total
        self.step = 0
        self.live: dict[str, float] = {}
        self.start = time.monotonic()
        self._last_log = self.start
        self._task = None
        if display.rich is not None:
            self._task = display.rich.add_task(label, total=total, live="")
        elif display.verbosity >= 0:
            display.line(f"{label}: started" + (f" ({total} steps max)" if total else ""))

    def update(self, step: int, total: int | None = None, **live: float) -> None:
        """Record that ``step`` steps are done (of ``total``), with live values to show."""
        self.step = step
        if total is not None:
            self.total = total
        self.live = dict(live)
        if self._task is not None:
            self.display.rich.update(
                self._task, completed=step, total=self.total, live=_format_live(self.live)
            )
            return
        now = time.monotonic()
        interval = self.display.log_interval / (5 if self.display.verbosity > 0 else 1)
        if self.display.verbosity >= 0 and now - self._last_log >= interval:
            self._last_log = now
            self.display.line(f"{self.label}: {self._status_text(now)}")

    def _status_text(self, now: float) -> str:
        elapsed = now - self.start
        text = f"step {self.step}" + (f"/{self.total}" if self.total else "")
        if self.total and self.step:
            remaining = elapsed / self.step * (self.total - self.step)
            text += f", {_format_seconds(elapsed)} elapsed, eta {_format_seconds(remaining)}"
        live = _format_live(self.live)
        return text + (f", {live}" if live else "")

    def close(self, note: str = "") -> float:
        """End the bar; returns the elapsed seconds."""
        elapsed = time.monotonic() - self.start
        if self._task is not None:
            self.display.rich.remove_task(self._task)
            self._task = None
        if self.display.verbosity >= 0:
            end = f"done in {_format_seconds(elapsed)}"
            if self.step:
                end += f" ({self.step} steps)"
            self.display.line(f"{self.label}: {end}" + (f", {note}" if note else ""))
        return elapsed

    def __enter__(self) -> StageProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._task is not None:
            self.display.rich.remove_task(self._task)
            self._task = None


class Display:
    """Where a run's messages go. ``verbosity``: -1 quiet, 0 normal, 1+ verbose.

    Use as a context manager around the run so the rich live display is started/stopped.
    """

    def __init__(
        self,
        verbosity: int = 0,
        stream: IO[str] | None = None,
        tty: bool | None = None,
        log_interval: float = 10.0,
    ):
        self.verbosity = verbosity
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self.log_interval = log_interval
        self.console = Console(file=self.stream, force_terminal=self.tty, highlight=False)
        self.rich: Progress | None = None

    def __enter__(self) -> Display:
        if self.tty and self.verbosity >= 0:
            self.rich = Progress(
                TextColumn("{task.description}"),
                BarColumn(bar_width=24),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TextColumn("eta"),
                TimeRemainingColumn(),
                TextColumn("{task.fields[live]}"),
                console=self.console,
                transient=True,
            )
            self.rich.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.rich is not None:
            self.rich.stop()
            self.rich = None

    def line(self, text: str) -> None:
        if self.rich is not None:
            self.rich.console.print(text, markup=False)
        else:
            print(text, file=self.stream, flush=True)

    def info(self, text: str) -> None:
        """A normal message (hidden with -q)."""
        if self.verbosity >= 0:
            self.line(text)

    def detail(self, text: str) -> None:
        """A verbose message (shown with -v)."""
        if self.verbosity > 0:
            self.line(text)

    def warn(self, text: str) -> None:
        """A warning (always shown)."""
        self.line(f"warning: {text}")

    def stage(self, label: str, total: int | None = None) -> StageProgress:
        return StageProgress(self, label, total)
