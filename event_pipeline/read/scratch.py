"""The import's scratch files (the archive's private copy, the spilled record bodies): unnamed temporary files in
``TMPDIR``, and the error that says so when that directory is full."""

from __future__ import annotations

import errno
import tempfile
from typing import IO

_FULL = (errno.ENOSPC, errno.EDQUOT)


def scratch_file(prefix: str) -> IO[bytes]:
    """An unnamed temporary file (:func:`tempfile.TemporaryFile`: unlinked at once, freed when closed or when the
    process ends), open for reading and writing bytes."""
    return tempfile.TemporaryFile(prefix=prefix)  # noqa: SIM115 (returned open)


def located(exc: OSError, what: str) -> OSError:
    """``exc`` if it is not a full disk or quota; else an OSError of the same errno that names the directory and
    ``what`` was being written (``"the archive's private copy"``), so the operator knows which space to free or
    where to point ``TMPDIR``."""
    if exc.errno not in _FULL:
        return exc
    where = tempfile.gettempdir()
    message = f"{exc.strerror} in the temporary directory {where} (TMPDIR) while writing {what}"
    return OSError(exc.errno, message)
