"""The installed package version (one source: setup.cfg's ``version``)."""

from importlib import metadata


def package_version() -> str:
    """Return the installed ``dragpipe`` version, or ``0+unknown`` when run from a bare tree."""
    try:
        return metadata.version("dragpipe")
    except metadata.PackageNotFoundError:
        return "0+unknown"


__version__ = package_version()
