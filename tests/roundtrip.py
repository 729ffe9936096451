"""The round trip's comparison: two archives hold the same records after the documented normalisations.

Written from the two zips' JSON only, without the export code or the
importer's tables: records are read with ``lossless.source_records`` (lists,
wrappers, JSON:API documents flattened, the event's embedded social links),
and two records are the same when they are equal after exactly these
normalisations, the ones README's "Export" section lists:

1. key style: keys compared folded (``starts-at`` = ``starts_at``);
2. ids as string or number: the value of an ``id`` key (a record's, or a
   reference object's) and the items of a list of ids compare as text;
3. time zone representation: a text that is an ISO 8601 date-time compares as
   the instant it names, one without an offset read in the event's zone;
4. identical duplicate records collapsed: a file's records compare as a set;
5. the order of a list of references (a session's ``speakers``) is not
   significant: such lists compare sorted by id.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from lossless import source_records

from event_pipeline.db import get_engine
from event_pipeline.media import from_settings

# The format's lists of references (a session's speakers, a speaker's or a track's sessions).
LIST_REFERENCES = {"speakers", "sessions"}
_DATETIME = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}")


def _instant(text: str, zone) -> str | None:
    if not _DATETIME.match(text):
        return None
    try:
        parsed = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    parsed = parsed if parsed.tzinfo else parsed.replace(tzinfo=zone)
    return "instant:" + parsed.astimezone(UTC).isoformat()


def _canon(value: Any, zone, key: str = "") -> Any:
    if isinstance(value, dict):
        return {k.replace("-", "_").lower(): _canon(v, zone, k.replace("-", "_").lower()) for k, v in value.items()}
    if isinstance(value, list):
        items = [_canon(v, zone, key) for v in value]
        if key not in LIST_REFERENCES:
            return items
        if all(isinstance(i, dict) and "id" in i for i in items):
            return sorted(items, key=lambda i: json.dumps(i, sort_keys=True))
        if all(isinstance(i, (int, str)) and not isinstance(i, bool) for i in items):
            return sorted(str(i) for i in items)
        return items
    if key == "id" and isinstance(value, (int, str)) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, str):
        return _instant(value, zone) or value
    return value


def _zone(records: dict[str, list[dict]]):
    event = (records.get("events") or [{}])[0]
    name = next((v for k, v in event.items() if k.lower() == "timezone"), None)
    try:
        return ZoneInfo(name) if isinstance(name, str) and name else UTC
    except (KeyError, ValueError):
        return UTC


def canonical_records(path) -> dict[str, list[str]]:
    """table -> the sorted, distinct canonical JSON of its records."""
    records = source_records(path)
    zone = _zone(records)
    out = {}
    for table, rows in records.items():
        out[table] = sorted({json.dumps(_canon(r, zone), sort_keys=True) for r in rows})
    return out


def differences(a, b) -> list[str]:
    """Every record of one archive the other lacks (after normalisation), as ``"table: only in X: {...}"``."""
    left, right = canonical_records(a), canonical_records(b)
    out = []
    for table in sorted(set(left) | set(right)):
        only_a = set(left.get(table, [])) - set(right.get(table, []))
        only_b = set(right.get(table, [])) - set(left.get(table, []))
        out += [f"{table}: only in A: {r:.400}" for r in sorted(only_a)]
        out += [f"{table}: only in B: {r:.400}" for r in sorted(only_b)]
    return out


# ---------------------------------------------------------------------------
# The rows side: one event's rows, comparable between two databases

MODEL_TABLES = ["social_links", "custom_forms", "microlocations", "sponsors", "speakers", "tracks", "session_types"]
MODEL_TABLES.append("sessions")
# Columns that differ between two databases or two imports by design: database ids, timestamps of the
# write, the event's own bookkeeping (random URL slug, revision, the archive's bytes).
BOOKKEEPING = {"id", "event_id", "created_at", "updated_at", "identifier", "revision", "archive_sha256"}
FOREIGN_KEYS = {"track_id": "tracks", "microlocation_id": "microlocations", "session_type_id": "session_types"}
MEDIA = {"logo_url", "original_image_url", "photo_url", "track_image_url", "slides_url", "audio_url", "video_url"}


def snapshot(url: str, key: str, skip: tuple[str, ...] = ()) -> dict[str, list]:
    """The event's rows as comparable values: no database ids, references by source key, media by bytes;
    without the events columns ``skip`` names."""
    storage = from_settings()
    media_bytes: dict[str, str] = {}

    def media(value):
        if not isinstance(value, str) or storage.key_for_url(value) is None:
            return value
        if value not in media_bytes:
            media_bytes[value] = "sha256:" + hashlib.sha256(storage.read(storage.key_for_url(value))).hexdigest()
        return media_bytes[value]

    out: dict[str, list] = {}
    with get_engine(url).connect() as conn:
        meta = sa.MetaData()
        meta.reflect(conn, only=["events", "session_speakers", *MODEL_TABLES])
        event = conn.execute(sa.select(meta.tables["events"]).where(meta.tables["events"].c.import_key == key)).one()
        keys = {}
        for name in MODEL_TABLES:
            table = meta.tables[name]
            rows = [dict(r) for r in conn.execute(sa.select(table).where(table.c.event_id == event.id)).mappings()]
            keys[name] = {r["id"]: r["source_key"] for r in rows}
            out[name] = rows
        for name in MODEL_TABLES:
            converted = []
            for row in out[name]:
                for column, target in FOREIGN_KEYS.items():
                    if column in row:
                        row[column] = keys[target].get(row[column])
                converted.append(
                    sorted(
                        (k, media(v) if k in MEDIA else v)
                        for k, v in row.items()
                        if k not in BOOKKEEPING and k != "content_hash"
                    )
                )
            out[name] = sorted(converted, key=repr)
        event_row = dict(event._mapping)
        out["events"] = sorted(
            (k, media(v) if k in MEDIA else v)
            for k, v in event_row.items()
            if k not in BOOKKEEPING | {"content_hash", *skip}
        )
        links = meta.tables["session_speakers"]
        out["session_speakers"] = sorted(
            (keys["sessions"][s], keys["speakers"][p])
            for s, p in conn.execute(sa.select(links.c.session_id, links.c.speaker_id))
            if s in keys["sessions"]
        )
    return out


def import_quickly(path, url: str, key: str) -> dict:
    """Import with the one importer, without Dagster's run machinery (``importer.import_archive``):
    the CLI import is tested elsewhere, and the round trips import each archive up to three times."""
    from event_pipeline.importer import import_archive
    from event_pipeline.intake import roots

    with roots.unrestricted():  # module-scoped fixtures import before the test's archive roots are set
        return import_archive(get_engine(url), key, str(path), uuid.uuid4().hex, storage=from_settings())


def another_database(url: str) -> str:
    """A fresh database of the same kind beside ``url``: another SQLite file, or another PostgreSQL schema."""
    if url.startswith("sqlite:///"):
        return url.replace(".db", f"-{uuid.uuid4().hex[:6]}.db")
    import psycopg

    base = url.split("?", 1)[0]
    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    return f"{base}?options=-csearch_path%3D{schema}"
