"""User-facing errors of the draggan package.

Every error a user can cause (bad checkpoint, bad drag points) is a ``DragganError``
whose message is one line that names the file or argument and says what to do.
"""


class DragganError(Exception):
    """Base class of draggan's user-facing errors (one-line message)."""


class CheckpointError(DragganError):
    """A checkpoint file is missing, unreadable, corrupt or does not fit the generator."""


class UnsafeCheckpointError(CheckpointError):
    """A pickle asks for a Python global outside the loader's allow-list (nothing was run)."""
