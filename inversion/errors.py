"""User-facing errors of the inversion package (one-line messages)."""


class InversionError(Exception):
    """Base class of inversion's user-facing errors."""
