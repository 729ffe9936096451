"""The lossless check: every field of every source record is somewhere in the database.

Written from the archive's JSON and the database's rows only, without the
normaliser's alias table: for each source record (the row with its
``source_id``) and each top-level field with a value, one of these holds:

- ``extra`` holds the field with its raw value (anywhere inside ``extra``,
  since media paths are kept under ``extra.archive_paths``);
- some column of the row holds the value, after the documented
  normalisations: numbers as text or text as numbers, instants compared as
  instants (a time without an offset is a wall time of the event's zone),
  JSON documents as JSON;
- the value is a reference (an id, ``{"id": ...}``, or a list of them) and
  the row links to a row with that ``source_id`` (or that name) through one
  of its foreign keys, the session/speaker link table, or, for a list, rows
  of another table pointing back at it (a track's ``sessions``).

Empty values (``null``, ``""``, ``[]``, ``{}``) are not checked: a column
left NULL says the same.
"""

from __future__ import annotations

import json
import math
import zipfile
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa

# Archive file names and the table each fills; written out here, not read from the catalog.
FILE_TABLES = {
    "event": "events",
    "events": "events",
    "forms": "custom_forms",
    "custom_forms": "custom_forms",
    "microlocations": "microlocations",
    "session_types": "session_types",
    "speakers": "speakers",
    "sponsors": "sponsors",
    "tracks": "tracks",
    "sessions": "sessions",
    "social_links": "social_links",
}
BOOKKEEPING = {"id", "event_id", "source_id", "source_key", "content_hash", "extra", "created_at", "updated_at"}


def _flatten_resource(resource: dict) -> dict:
    record = {"id": resource.get("id"), **(resource.get("attributes") or {})}
    for name, body in (resource.get("relationships") or {}).items():
        data = body.get("data") if isinstance(body, dict) else None
        record[name] = [d.get("id") for d in data] if isinstance(data, list) else (data or {}).get("id")
    for name in ("links", "meta"):
        if name in resource:
            record[name] = resource[name]
    return record


def _records(stem: str, document: Any) -> list[dict]:
    if isinstance(document, dict) and "data" in document:
        data = document["data"]
        return [_flatten_resource(r) for r in (data if isinstance(data, list) else [data])]
    if isinstance(document, dict):
        for key, value in document.items():
            if key.replace("-", "_") in (stem, stem + "s", FILE_TABLES.get(stem)) and isinstance(value, list):
                return value
        return [document]
    return document if isinstance(document, list) else []


def source_records(path) -> dict[str, list[dict]]:
    """table -> the archive's records for it (event's embedded social links included)."""
    out: dict[str, list[dict]] = {}
    with zipfile.ZipFile(path) as zf:
        for name in zf.namelist():
            stem = name.rsplit("/", 1)[-1]
            stem = stem[:-5] if stem.endswith(".json") else stem
            if stem not in FILE_TABLES or name.count("/") > 1:
                continue
            document = json.loads(zf.read(name).decode("utf-8-sig"))
            records = _records(stem, document)
            table = FILE_TABLES[stem]
            if table == "events":
                for record in records:
                    for key in list(record):
                        if key.replace("-", "_") == "social_links":
                            out.setdefault("social_links", []).extend(record.pop(key) or [])
            out.setdefault(table, []).extend(r for r in records if isinstance(r, dict))
    return out


def _empty(value: Any) -> bool:
    return value is None or value == "" or value == [] or value == {}


def _contains(haystack: Any, needle: Any) -> bool:
    if haystack == needle:
        return True
    if isinstance(haystack, dict):
        return any(_contains(v, needle) for v in haystack.values())
    if isinstance(haystack, list):
        return any(_contains(v, needle) for v in haystack)
    return False


def _instant(value: Any, zone) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=zone)


def _same(column_value: Any, value: Any, zone) -> bool:
    if column_value is None:
        return False
    if isinstance(column_value, bool) or isinstance(value, bool):
        return column_value == value
    if isinstance(column_value, datetime):
        instant = _instant(value, zone)
        return instant is not None and instant == _instant(column_value, zone)
    if isinstance(column_value, float):
        try:
            return math.isclose(column_value, float(value))
        except (TypeError, ValueError):
            return False
    if isinstance(column_value, int):
        return not isinstance(value, (dict, list)) and str(column_value) == str(value).strip()
    if isinstance(column_value, str):
        if isinstance(value, (dict, list)):
            try:
                return json.loads(column_value) == value
            except ValueError:
                return False
        return column_value == (value if isinstance(value, str) else str(value))
    return column_value == value


def _ref_ids(value: Any) -> list[str] | None:
    items = value if isinstance(value, list) else [value]
    ids = []
    for item in items:
        if isinstance(item, dict):
            if item.get("id") is None:
                return None
            item = item["id"]
        if isinstance(item, bool) or not isinstance(item, (int, str)):
            return None
        ids.append(str(item).strip())
    return ids


class Database:
    """The rows of one event, read once."""

    def __init__(self, url: str, event_id: int):
        engine = sa.create_engine(url)
        meta = sa.MetaData()
        meta.reflect(engine)
        self.tables = meta.tables
        self.rows: dict[str, list[dict]] = {}
        with engine.connect() as conn:
            for name, table in meta.tables.items():
                if name == "events":
                    query = sa.select(table).where(table.c.id == event_id)
                elif "event_id" in table.c and "source_id" in table.c:
                    query = sa.select(table).where(table.c.event_id == event_id)
                elif name == "session_speakers":
                    query = sa.select(table)
                else:
                    continue
                self.rows[name] = [dict(r) for r in conn.execute(query).mappings()]
        engine.dispose()
        self.by_db_id = {name: {r["id"]: r for r in rows if "id" in r} for name, rows in self.rows.items()}

    def row(self, table: str, source_id: str) -> dict | None:
        rows = [r for r in self.rows.get(table, []) if r["source_id"] == source_id]
        return rows[0] if rows else None

    def _targets(self, table: str, row: dict) -> list[dict]:
        """Every row this row links to: foreign keys, the link table, rows pointing back at it."""
        linked = []
        for fk in self.tables[table].foreign_keys:
            target = self.by_db_id.get(fk.column.table.name, {}).get(row.get(fk.parent.name))
            if target:
                linked.append(target)
        for link in self.rows.get("session_speakers", []):
            if table == "sessions" and link["session_id"] == row["id"]:
                linked.append(self.by_db_id["speakers"][link["speaker_id"]])
            if table == "speakers" and link["speaker_id"] == row["id"]:
                linked.append(self.by_db_id["sessions"][link["session_id"]])
        for other, other_table in self.tables.items():
            for fk in other_table.foreign_keys:
                if fk.column.table.name == table and fk.parent.name != "event_id" and other in self.rows:
                    linked.extend(r for r in self.rows[other] if r.get(fk.parent.name) == row["id"])
        return linked

    def links_to(self, table: str, row: dict, ids: list[str]) -> bool:
        linked = self._targets(table, row)
        keys = {str(t.get("source_id")) for t in linked} | {str(t.get("name")) for t in linked}
        return all(i in keys for i in ids)


def lost_fields(path, url: str, event_id: int) -> list[str]:
    """Every source field the database does not hold, as ``"table id field: value"``; [] when lossless."""
    db = Database(url, event_id)
    sources = source_records(path)
    event = (sources.get("events") or [{}])[0]
    zone_name = next((v for k, v in event.items() if k.lower() == "timezone"), None)
    try:
        zone = ZoneInfo(zone_name) if zone_name else UTC
    except (KeyError, ValueError):
        zone = UTC
    lost = []
    for table, records in sources.items():
        for record in records:
            source_id = str(record.get("id")).strip()
            row = db.row(table, source_id)
            if row is None:
                lost.append(f"{table} {source_id}: no row")
                continue
            extra = row["extra"] or {}
            columns = {k: v for k, v in row.items() if k not in BOOKKEEPING}
            for key, value in record.items():
                if key == "id" or _empty(value):
                    continue
                if key in extra and extra[key] == value or _contains(extra, value):
                    continue
                if any(_same(v, value, zone) for v in columns.values()):
                    continue
                ids = _ref_ids(value)
                if ids is not None and db.links_to(table, row, ids):
                    continue
                lost.append(f"{table} {source_id} {key}: {value!r:.80}")
    return lost
