"""The import's scratch files (the archive's private copy, the spilled record bodies): unnamed temporary files in
``TMPDIR``, and the error that says so when that directory is full."""

from __future__ import annotations

import contextlib
import errno
import tempfile
from collections.abc import Iterator
from typing import IO

_FULL = (errno.ENOSPC, errno.EDQUOT)


def scratch_file(prefix: str) -> IO[bytes]:
    """An unnamed temporary file (:func:`tempfile.TemporaryFile`: unlinked at once, freed when closed or when the
    process ends), open for reading and writing bytes."""
    return tempfile.TemporaryFile(prefix=prefix)  # noqa: SIM115 (returned open)


@contextlib.contextmanager
def writing(what: str) -> Iterator[None]:
    """Around writes to a scratch file: an OSError of a full disk or quota raised inside becomes one of the same
    errno that names the directory and ``what`` was being written (``"the archive's private copy"``), so the
    operator knows which space to free or where to point ``TMPDIR``; any other error goes through unchanged."""
    try:
        yield
    except OSError as exc:
        if exc.errno not in _FULL:
            raise
        where = tempfile.gettempdir()
        message = f"{exc.strerror} in the temporary directory {where} (TMPDIR) while writing {what}"
        raise OSError(exc.errno, message) from exc
