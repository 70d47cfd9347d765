"""Whether a folder can be written (or created), asked before a run does any work.

A run that finds out at the end that ``--out`` is a file, or that its workdir is read-only,
has wasted every inversion before it; ``folder_problem`` answers from the file system
alone (what exists, and ``os.access``, which also knows read-only mounts), creating
nothing.
"""

from __future__ import annotations

import os
from pathlib import Path


def folder_problem(path: Path) -> str | None:
    """Why ``path`` cannot be used as a folder to write into, in words naming the path that
    is in the way; None when it is a writable folder or can be created."""
    path = Path(path).absolute()
    if path.exists():
        if not path.is_dir():
            return f"{path} is a file, not a folder"
        if not os.access(path, os.W_OK | os.X_OK):
            return f"the folder {path} is not writable"
        return None
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        return f"{parent} is a file, so the folder {path} cannot be created"
    if not os.access(parent, os.W_OK | os.X_OK):
        return f"the folder {parent} is not writable, so {path} cannot be created in it"
    return None
