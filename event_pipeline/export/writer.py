"""One event as an Open Event zip: the data files, then the media, deterministic and streamed.

Members come in a fixed order (the data files in the order below, ``meta``,
then the media sorted by path), each with the same timestamp (1980-01-01, the
earliest a zip holds), permissions and compression, and every JSON file has a
fixed key order: the same database state gives a byte-identical zip. Rows are
read in chunks and each record is compressed as it is written, so memory does
not grow with the event (beyond the small per-target tuples references need).
The zip is written to a temporary file beside ``out`` and renamed into place:
a failed export leaves no partial file.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Connection, Engine

from event_pipeline.export import media as export_media
from event_pipeline.export import rows as db
from event_pipeline.export.dialects import DIALECTS, Context, field_key, plain_record, shown_columns
from event_pipeline.export.documents import encode, write_document
from event_pipeline.export.source import SourceFile, member_columns
from event_pipeline.model import timezones
from event_pipeline.model.catalog import BY_NAME, EVENT, ModelSpec
from event_pipeline.settings import base_url

# The files of the fixed dialects, in the order of the reference server's exports (social links are in the event).
ORDER = ("event", "custom_forms", "microlocations", "session_types", "speakers", "sponsors", "tracks", "sessions")
FIXED_TIME = (1980, 1, 1, 0, 0, 0)


def zip_info(name: str) -> zipfile.ZipInfo:
    """A member's header, the same for every export: fixed time, permissions, system, compression."""
    info = zipfile.ZipInfo(name, FIXED_TIME)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.create_system = 3
    info.external_attr = 0o644 << 16
    return info


def _with_links(conn: Connection, spec: ModelSpec, event_id: int) -> Iterator[tuple[dict, dict[str, list[int]]]]:
    """Each row of a child model with, per list reference, the ids of the rows it is linked to."""
    for chunk in db.chunks(conn, spec, event_id):
        ids = [r["id"] for r in chunk]
        found: dict[str, dict[int, list[int]]] = {}
        for ref in (r for r in spec.refs if r.many):
            if ref.inverse:
                column = next(r.fk_column for r in BY_NAME[ref.target].refs if r.field == ref.inverse)
                found[ref.field] = db.pointing(conn, ref.target, column, ids)
            else:
                assert ref.link is not None  # a list reference is an inverse or one side of a link
                found[ref.field] = db.linked(conn, ref.link, spec.name, ids)
        for row in chunk:
            yield row, {name: links.get(row["id"], []) for name, links in found.items()}


class _Export:
    """One export in progress: the context, the media it names, record counts."""

    def __init__(self, conn: Connection, event: dict[str, Any], dialect: str, storage: Any):
        self.conn = conn
        self.event = event
        self.dialect = dialect
        self.shape = event.get("archive_format") if dialect == "source" else None
        zone = timezones.resolve(event["timezone"]) if isinstance(event.get("timezone"), str) else None
        self.ctx = Context(dialect, zone, event["source_id"], self.shape)
        wanted: dict[str, set[str]] = member_columns(self.shape) if self.shape else {}
        for spec in BY_NAME.values():
            for ref in spec.refs:
                columns = wanted.setdefault(ref.target, set())
                if not self.shape:
                    columns.update(shown_columns(ref))
        for target, columns in wanted.items():
            self.ctx.targets[target] = db.targets(conn, BY_NAME[target], event["id"], columns)
        member = (self.shape or {}).get("files", {}).get("event", {}).get("member") or ""
        self.media = export_media.Collector(storage, member.rpartition("/")[0] + "/" if "/" in member else "")
        self.counts: dict[str, int] = {}

    def records(self, spec: ModelSpec) -> Iterator[dict[str, Any]]:
        if spec is EVENT:
            self.media.see(spec, self.event)
            yield self._event()
            return
        source = SourceFile(spec, self.shape["files"][spec.name]) if self.shape else None
        for row, many in _with_links(self.conn, spec, self.event["id"]):
            if source is not None and row["source_id"] in source.not_in_file:
                continue  # given only inline in the archive: written back there, by the references to it
            self.media.see(spec, row)
            yield source.record(row, self.ctx, many) if source else plain_record(spec, row, self.ctx, many)

    def _event(self) -> dict[str, Any]:
        links = BY_NAME["social_links"]
        if not self.shape:
            embedded = [
                plain_record(links, r, self.ctx, {}) for r, _ in _with_links(self.conn, links, self.event["id"])
            ]
            return plain_record(EVENT, self.event, self.ctx, {}, embedded)
        record = SourceFile(EVENT, self.shape["files"]["event"]).record(self.event, self.ctx, {})
        for name, file in self.shape["files"].items():
            envelope = file["envelope"]
            if isinstance(envelope, dict) and "embedded" in envelope:
                source = SourceFile(BY_NAME[name], file)
                rows = _with_links(self.conn, BY_NAME[name], self.event["id"])
                record[envelope["embedded"]] = [source.record(r, self.ctx, many) for r, many in rows]
        return record

    def files(self) -> Iterator[tuple[str, Any, ModelSpec]]:
        """(member name, envelope, model) of each data file, in the zip's order."""
        if not self.shape:
            for name in ORDER:
                yield BY_NAME[name].files[0], "object" if name == "event" else "list", BY_NAME[name]
            return
        files = self.shape["files"]
        for name in sorted(files, key=lambda n: ORDER.index(n) if n in ORDER else len(ORDER)):
            envelope = files[name]["envelope"]
            if not (isinstance(envelope, dict) and "embedded" in envelope):
                yield files[name]["member"], envelope, BY_NAME[name]

    def meta(self) -> tuple[str, Any] | None:
        if self.shape:
            meta = self.shape.get("meta")
            return (self.shape.get("meta_member") or "meta", meta) if meta is not None else None
        return "meta", {field_key(EVENT, "root_url", self.dialect): base_url() + "/"}


def export_event(
    engine: Engine,
    out: str | Path,
    *,
    key: str | None = None,
    event_id: int | None = None,
    dialect: str = "source",
    storage: Any = None,
) -> dict[str, Any]:
    """Write the event named by ``key`` (archive key) or ``event_id`` to the zip ``out`` in ``dialect``.

    Returns ``{"path", "size", "sha256", "dialect", "key", "event_id", "counts": {member: records},
    "media": {"files", "bytes"}, "warnings": [...]}``. Raises ExportError (no such event, an unknown
    dialect, a ``source`` export of an event imported before archive formats were recorded).
    ``storage`` is where the import stored media (``media.from_settings()`` when None).
    """
    if dialect not in DIALECTS:
        raise db.ExportError(f"unknown dialect {dialect!r}; one of {', '.join(DIALECTS)}")
    out = Path(out)
    temporary = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    try:
        with engine.connect() as conn:
            if conn.dialect.name == "postgresql":  # every chunk from one snapshot
                conn = conn.execution_options(isolation_level="REPEATABLE READ")
            with conn.begin():
                event = db.find_event(conn, key, event_id)
                if dialect == "source" and not event.get("archive_format"):
                    raise db.ExportError(
                        "this event was imported before archive formats were recorded: import it again with "
                        "--force, or export it --dialect kebab or snake"
                    )
                job = _Export(conn, event, dialect, storage)
                _write(job, temporary)
        os.replace(temporary, out)
    finally:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()
    digest, size = hashlib.sha256(), 0
    with out.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
            size += len(block)
    return {
        "path": str(out.resolve()),
        "size": size,
        "sha256": digest.hexdigest(),
        "dialect": dialect,
        "key": event["import_key"],
        "event_id": event["id"],
        "counts": job.counts,
        "media": job.media.summary(),
        "warnings": job.media.warnings,
    }


def _write(job: _Export, path: Path) -> None:
    sort_keys = job.dialect != "source"  # the source dialect keeps the archive's key order
    with zipfile.ZipFile(path, "w") as zf:
        for member, envelope, spec in job.files():
            with zf.open(zip_info(member), "w", force_zip64=True) as sink:
                job.counts[member] = write_document(sink, envelope, job.records(spec), sort_keys)
        meta = job.meta()
        if meta is not None:
            zf.writestr(zip_info(meta[0]), encode(meta[1], sort_keys))
        job.media.write(zf, zip_info)
