"""User-facing errors of the inversion package (one-line messages)."""


class InversionError(Exception):
    """Base class of inversion's user-facing errors."""


class ConfigError(InversionError, ValueError):
    """A ``ProjectConfig`` / ``TuneConfig`` field has an invalid value."""


class PerceptualWeightsMissing(InversionError):
    """torchvision's ImageNet weights for the LPIPS backbone are not on disk.

    Raised before any work starts; the message names the file and where to put it.
    """


class ResumeMismatch(InversionError):
    """A resume state does not belong to this run (other config, target or generator)."""
