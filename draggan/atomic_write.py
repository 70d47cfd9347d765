"""``atomic_write``: publish a file under its final name only once it is complete and durable.

Every writer of dragpipe goes through this one helper (the stage store, the digest cache, the
output photos, previews, dragpipe's generator files): the bytes go to a temporary file in the
target's own folder, which is flushed to disk (``fsync``), renamed over the target
(``os.replace``, atomic on POSIX and Windows) and the folder is synced, so the new name
survives a power loss. A crash at any moment leaves either the old file or the new one under
the final name, never a half-written one; the temporary file of a failed write is removed.

It lives in ``draggan`` (the lowest layer) because ``draggan``'s own generator writer uses
it and ``draggan`` imports none of dragpipe's other packages.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def fsync_path(path: str | os.PathLike[str]) -> None:
    """Flush a file's or a folder's contents to disk (ignored where the OS refuses, e.g.
    folders on Windows)."""
    flags = os.O_RDONLY
    if Path(path).is_dir():
        flags |= getattr(os, "O_DIRECTORY", 0)
    try:
        fd = os.open(path, flags)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextmanager
def atomic_write(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; write the file there.

    On a normal exit the temporary file is synced and renamed to ``path``, then the folder
    is synced. On an exception the temporary file is removed and ``path`` is untouched.
    The temporary name starts with ``.`` and ends with ``.tmp`` (unique per call, so
    concurrent writers never share one); it is created with the usual permissions (0666
    less the umask), like a plain ``open``. The folder must exist.
    """
    target = Path(path)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    try:
        yield tmp
        fsync_path(tmp)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_path(target.parent)


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` through ``atomic_write``."""
    with atomic_write(path) as tmp:
        tmp.write_bytes(data)
