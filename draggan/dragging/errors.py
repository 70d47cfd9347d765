"""Errors of the drag engine."""

from draggan.errors import DragganError


class DragInputError(DragganError, ValueError):
    """Bad drag input (points, mask, ws, config); raised before any optimisation step."""


class DragResumeError(DragganError, ValueError):
    """A ``DragState`` that cannot resume this drag (another run's, another version, damaged)."""
