"""The media files of an export: the stored objects copied back under the paths the records name.

A media column holds the stored object's URL and ``extra["archive_paths"]``
the archive's own value (``media/upload.py``). Where that value is a path
(``/images/speakers/x.jpg``) and an object was stored for it, the object's
bytes become the zip member at that path (without the leading ``/``, under
the archive's top folder if it had one). A value that is a URL stays a URL
in the record and adds no member; a path whose file the archive lacked
(the column is empty) adds none either.
"""

from __future__ import annotations

import posixpath
import zipfile
from collections.abc import Callable
from typing import Any

from event_pipeline.media.backends import from_settings
from event_pipeline.media.fetch import is_url
from event_pipeline.media.objects import ARCHIVE_PATHS
from event_pipeline.media.storage import StorageError
from event_pipeline.model.catalog import ModelSpec


def member_name(path: str, prefix: str = "") -> str | None:
    """The zip member for a record's media path, or None for a name no archive may hold (``..``, empty)."""
    name = path.strip().lstrip("/")
    if not name or name.endswith("/") or "\\" in name or "\x00" in name:
        return None
    if posixpath.normpath(name) != name or name.startswith("../") or name == "..":
        return None
    return prefix + name


class Collector:
    """The media members one export writes: member name -> stored object key, found row by row."""

    def __init__(self, storage: Any, prefix: str = ""):
        self.storage = storage
        self.prefix = prefix
        self.members: dict[str, str] = {}
        self.warnings: list[dict[str, Any]] = []
        self.bytes = 0

    def see(self, spec: ModelSpec, row: dict[str, Any]) -> None:
        """Note the media files one row names (its ``spec.media`` columns)."""
        paths = (row.get("extra") or {}).get(ARCHIVE_PATHS) or {}
        for media in spec.media:
            path, stored = paths.get(media.column), row.get(media.column)
            if not isinstance(path, str) or not isinstance(stored, str) or is_url(path):
                continue
            member = member_name(path, self.prefix)
            if member is None:
                self._warn(spec, row, media.column, f"media path {path!r} is no safe zip member name; not written")
                continue
            if self.storage is None:
                self.storage = from_settings()
            key = self.storage.key_for_url(stored)
            if key is None:
                self._warn(spec, row, media.column, f"{stored!r} is not an object of this media storage")
                continue
            self.members.setdefault(member, key)

    def _warn(self, spec: ModelSpec, row: dict[str, Any], column: str, message: str) -> None:
        self.warnings.append(
            {"file": spec.files[0], "record_id": row.get("source_id"), "field": column, "message": message}
        )

    def write(self, zf: zipfile.ZipFile, info: Callable[[str], zipfile.ZipInfo]) -> None:
        """Copy every object into the zip, sorted by member name; an object storage no longer has is a warning."""
        for member in sorted(self.members):
            try:
                data = self.storage.read(self.members[member])
            except (StorageError, OSError) as exc:
                self.warnings.append(
                    {"file": member, "record_id": None, "field": None, "message": f"not exported: {exc}"}
                )
                continue
            zf.writestr(info(member), data)
            self.bytes += len(data)

    def summary(self) -> dict[str, int]:
        return {"files": len(self.members), "bytes": self.bytes}
