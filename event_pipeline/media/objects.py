"""The shapes an import's media are planned in: stored objects, one row's media columns, object keys.

- :class:`StoredObject`: one object in storage (key, sha256, size in bytes, served
  type) and where its bytes come from (a zip member or a fetched URL);
- :class:`RowMedia`: one row's media columns as they are to be written, with the
  archive's values kept in ``extra[ARCHIVE_PATHS]`` where they differ;
- :class:`UrlToFetch`: a URL an archive gives for one column of one row, to be fetched;
- :func:`object_key`: ``db-<namespace>/events/{event_id}/{sha256}{suffix}``;
- :func:`failed`: an ImportFailed located at the field naming the media.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from event_pipeline.media.storage import event_prefix
from event_pipeline.model.catalog import Media, ModelSpec
from event_pipeline.problems import ImportFailed, Problem

ARCHIVE_PATHS = "archive_paths"  # the key of a row's ``extra`` that keeps the archive's values
COUNTERS = ("uploaded", "bytes_uploaded", "reused", "fetched", "kept_urls", "missing", "deleted", "swept")


@dataclass(frozen=True)
class StoredObject:
    """One object in storage: its key, the sha256 (hex) and size (bytes) of its content, and its source."""

    key: str
    sha256: str
    size: int
    content_type: str  # as served: an allow-listed type, else application/octet-stream
    member: str | None = None  # the zip member the bytes come from
    url: str | None = None  # or the URL they were fetched from


@dataclass(slots=True)  # one per row with media (50 000 speakers: 50 000 of them, in the media plan)
class RowMedia:
    """One row's media columns as they are to be stored."""

    source_id: str
    values: dict[str, str | None]  # column -> stored URL, kept URL or None
    archive_paths: dict[str, str]  # column -> the archive's value, where it differs from the column's
    record: Any = None  # the row's NormRecord while the media are planned (``prepare``), then None
    extra: dict[str, Any] | None = None  # the record's extra, for a row written without its planned row

    def full_extra(self, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        """The row's ``extra`` with the archive's values under ``ARCHIVE_PATHS`` (if any differ); ``extra``:
        the record's, when the caller has it (the row being written), else the one kept (``prepare``).
        Raises ValueError if there is none."""
        if extra is None:
            extra = self.extra if self.extra is not None else (self.record.extra if self.record else None)
        if extra is None:
            raise ValueError(f"row {self.source_id}: its record's extra was not kept")
        if not self.archive_paths:
            return extra
        return {**extra, ARCHIVE_PATHS: dict(self.archive_paths)}


@dataclass
class UrlToFetch:
    """A URL to fetch for one column of one row (``raw``: the archive's value, ``url``: it stripped)."""

    spec: ModelSpec
    media: Media
    row_id: int
    row: RowMedia
    raw: str
    url: str


def object_key(namespace: str, event_id: int, sha256: str, suffix: str) -> str:
    """``db-<namespace>/events/{event_id}/{sha256}{suffix}``: content-addressed within the event."""
    return f"{event_prefix(namespace, event_id)}{sha256}{suffix}"


def failed(where: Problem | None, message: str) -> ImportFailed:
    """An ImportFailed located at ``where`` (a Problem naming file, record and field; its message unused)."""
    if where is None:
        return ImportFailed([Problem(None, None, None, message)])
    return ImportFailed([Problem(where.file, where.record_id, where.field, message)])
