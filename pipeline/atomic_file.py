"""Write a user-facing file atomically, with the permissions any other program would give it.

``atomic_output(path)`` yields a binary stream; the file appears at ``path`` only when the
block ends without error (temporary file in the same folder, fsync, ``os.replace``), so a
reader never sees half a file and an interrupted write leaves the old file alone. The
temporary file is created with mode 0o666 minus the user's umask, as ``open()`` does
(``tempfile.mkstemp`` would make every output 0600).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO


@contextmanager
def atomic_output(path: str | Path) -> Iterator[BinaryIO]:
    """A stream whose bytes replace ``path`` when the ``with`` block succeeds."""
    path = Path(path)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    while True:
        temp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
        try:
            handle = os.open(temp, flags, 0o666)
            break
        except FileExistsError:
            continue
    try:
        with os.fdopen(handle, "wb") as stream:
            yield stream
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
