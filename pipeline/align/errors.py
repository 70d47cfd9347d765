"""Errors of the align stage (one line each, naming the photo or file)."""

from __future__ import annotations

from pipeline.errors import PipelineError, UsageError


class NoFaceError(PipelineError):
    """No face was detected in a photo (exit code 1: that photo failed)."""

    def __init__(self, photo: object, detail: str = ""):
        extra = f" ({detail})" if detail else ""
        super().__init__(
            f"no face found in {photo}{extra}: give its 68 landmarks instead "
            "('landmarks:' in the spec or 'dragpipe landmarks --landmarks FILE.json'); "
            "faces smaller than about 40 px are not detected"
        )


class FaceSelectionError(UsageError):
    """The requested face (index or keyword) does not exist in the photo (exit code 2)."""


class LandmarksFileError(UsageError):
    """A landmark override JSON file is missing or malformed (exit code 2)."""
