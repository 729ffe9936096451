"""An archive read from a private copy: the bytes its sha256 names, whatever happens to the file meanwhile.

- :func:`snapshot`: an anonymous temporary copy of a file and the sha256 of exactly
  its bytes, in one pass;
- :func:`close_copy`: close a zip opened on such a copy, and so delete the copy;
- :func:`file_sha256`: the sha256 (hex) of a file;
- :data:`ZIP_ERRORS`: what ``zipfile`` raises on damaged, encrypted or unsupported
  archives and members.
"""

from __future__ import annotations

import contextlib
import hashlib
import zipfile
import zlib
from pathlib import Path
from typing import IO

from event_pipeline.read.scratch import scratch_file, writing

# What zipfile raises on damaged, encrypted or unsupported archives and members.
ZIP_ERRORS = (
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    EOFError,
    OSError,
    NotImplementedError,
    RuntimeError,
    ValueError,
    zlib.error,
)


def close_copy(zf: zipfile.ZipFile) -> None:
    """Close a zip opened on a private copy (:func:`snapshot`), and so delete the copy: ``ZipFile``
    does not close a file object it was given."""
    copy = zf.fp
    zf.close()
    if copy is not None:
        copy.close()


def snapshot(path: Path) -> tuple[IO[bytes], str]:
    """A private copy of the file at ``path`` (an anonymous temporary file, gone once closed, even
    after a crash) and the sha256 of exactly its bytes, read in one pass: whatever happens to ``path``
    afterwards, the copy is the archive that hash names. Raises OSError if the file cannot be read or the copy
    written (a full ``TMPDIR`` named, :func:`~event_pipeline.read.scratch.writing`)."""
    copy = scratch_file("event-pipeline-archive-")
    try:
        digest = hashlib.sha256()
        # Reading gives no ENOSPC: a full disk is the copy's.
        with open(path, "rb") as source, writing("the archive's private copy"):
            while chunk := source.read(1 << 20):
                digest.update(chunk)
                copy.write(chunk)
            copy.flush()
        copy.seek(0)
    except BaseException:
        with contextlib.suppress(OSError):  # flushing what a full disk refused fails again: the copy is dropped
            copy.close()
        raise
    return copy, digest.hexdigest()


def file_sha256(path: Path) -> str:
    """The sha256 (hex) of the file at ``path``. OSError if it cannot be read."""
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()
