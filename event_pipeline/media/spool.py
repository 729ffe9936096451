"""The bytes of one object on their way to storage: read from the validated archive, or fetched, into a spool.

- :class:`ArchiveReader`: the zip, opened on first use from a private copy, after
  checking that the copy's sha256 is the one validation saw; copies one member's
  bytes out (returning its sha256 and size) with a located ImportFailed if it cannot;
- :func:`new_spool`: a temporary file kept in memory up to ``SPOOL_MEMORY`` bytes;
- :func:`digest`: the sha256 (hex) and size (bytes) of what a spool holds.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import zipfile
from pathlib import Path
from typing import IO

from event_pipeline.media.objects import failed
from event_pipeline.problems import Problem
from event_pipeline.read.private_copy import ZIP_ERRORS, close_copy, snapshot

SPOOL_MEMORY = 8 << 20  # bytes of one file kept in memory before it spills to a temporary file


class ArchiveReader:
    """The zip, opened on first use after checking it is still the archive that was validated."""

    def __init__(self, path: str, sha256: str):
        self.path, self.sha256 = path, sha256
        self._zip: zipfile.ZipFile | None = None

    def __enter__(self) -> ArchiveReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _open(self) -> zipfile.ZipFile:
        if self._zip is None:
            try:
                copy, sha256 = snapshot(Path(self.path))  # hashed and read from one private copy
            except OSError as exc:
                raise failed(None, f"cannot read the archive's media: {exc}") from exc
            if sha256 != self.sha256:
                copy.close()
                raise failed(None, f"{self.path} changed since it was validated; import it again")
            self._zip = zipfile.ZipFile(copy)
        return self._zip

    def copy(self, member: str, sink: IO[bytes], where: Problem | None = None) -> tuple[str, int]:
        """Copy a member's bytes to ``sink``; returns (sha256, size). ImportFailed located at ``where``."""
        digest, size = hashlib.sha256(), 0
        try:
            with self._open().open(member) as source:
                for chunk in iter(lambda: source.read(1 << 20), b""):
                    digest.update(chunk)
                    size += len(chunk)
                    sink.write(chunk)
        except ZIP_ERRORS as exc:
            raise failed(where, f"cannot read media file {member!r} from the zip: {exc}") from exc
        return digest.hexdigest(), size

    def close(self) -> None:
        """Close (and so delete) the private copy, if it was made."""
        if self._zip is not None:
            close_copy(self._zip)
            self._zip = None


def new_spool() -> tempfile.SpooledTemporaryFile:
    """An empty spool: in memory up to ``SPOOL_MEMORY`` bytes, then a temporary file."""
    return tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY)


def digest(spool: IO[bytes]) -> tuple[str, int]:
    """(sha256 hex, size in bytes) of the spool's content; leaves the position at its end."""
    spool.seek(0)
    found = hashlib.file_digest(spool, "sha256")  # type: ignore[arg-type]  # IO[bytes] reads as the protocol asks
    return found.hexdigest(), spool.seek(0, os.SEEK_END)  # the size, however file_digest read it
