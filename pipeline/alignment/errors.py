"""Errors of the align stage (one line each, naming the photo or file)."""

from __future__ import annotations

from pipeline.errors import PipelineError, UsageError


class NoFaceError(PipelineError):
    """No face was detected in a photo (exit code 1: that photo failed).

    ``NoFaceError.for_photo(path)`` builds the standard one-line message, which names the
    file and points to the landmark override.
    """

    def __init__(self, message: str):
        super().__init__(message, exit_code=1)

    @classmethod
    def for_photo(cls, photo: object, detail: str = "") -> NoFaceError:
        extra = f" ({detail})" if detail else ""
        return cls(
            f"no face found in {photo}{extra}: faces smaller than about 40 px are not "
            "detected; give its 68 landmarks instead ('landmarks:' in the spec, or "
            "'dragpipe landmarks PHOTO --landmarks FILE.json' to check them)"
        )


class FaceSelectionError(UsageError):
    """The requested face (index or keyword) does not exist in the photo (exit code 2)."""


class LandmarksFileError(UsageError):
    """A landmark override JSON file is missing or malformed (exit code 2)."""


class AlignGeometryError(PipelineError, ValueError):
    """Landmarks or a quad that cannot be aligned (degenerate, or outside the photo)."""
