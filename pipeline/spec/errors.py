"""Spec problems and the error that reports all of them at once."""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.errors import UsageError


@dataclass(frozen=True)
class Problem:
    """One thing wrong in a spec file, located at 1-based ``line``:``column``.

    ``field`` is the dotted path of the offending value (``photos[0].edits[1].points[0]``),
    ``got`` the value as written in the file (None: nothing was written there).
    """

    file: str
    line: int
    column: int
    field: str
    message: str
    got: str | None
    expected: str

    def __str__(self) -> str:
        got = "nothing" if self.got is None else self.got
        return (
            f"{self.file}:{self.line}:{self.column}: {self.field or '<spec>'}: "
            f"{self.message} (got {got}); expected {self.expected}"
        )


class SpecError(UsageError):
    """A spec file with problems (exit code 2); the message has one problem per line.

    ``problems`` lists them sorted by position in the file.
    """

    def __init__(self, problems: list[Problem]):
        if not problems:
            raise ValueError("SpecError needs at least one problem")
        self.problems = sorted(problems, key=lambda p: (p.file, p.line, p.column, p.field))
        super().__init__("\n".join(str(p) for p in self.problems))
