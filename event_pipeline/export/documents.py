"""Data files as bytes: records streamed into the envelope their dialect (or archive) uses.

A file is written record by record (never built as one document in memory):
``[`` + records + ``]``, a wrapper object (``{"sessions": [...]}``), a JSON:API
document (``{"data": [...]}``), or a single object (the event). JSON is UTF-8
without ASCII escapes; the fixed dialects sort keys, the ``source`` dialect
keeps the archive's key order (the import keeps ``extra`` in that order).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import IO, Any


def encode(value: Any, sort_keys: bool) -> bytes:
    return json.dumps(value, ensure_ascii=False, sort_keys=sort_keys, allow_nan=False).encode("utf-8")


def _resource(record: dict[str, Any], jsonapi: dict[str, Any]) -> dict[str, Any]:
    """A flat record as a JSON:API resource object (the inverse of the import's flattening)."""
    relationships = jsonapi.get("relationships") or {}
    resource: dict[str, Any] = {"type": jsonapi.get("type"), "id": record.get("id")}
    attributes = {k: v for k, v in record.items() if k not in relationships and k not in ("id", "links", "meta")}
    resource["attributes"] = attributes
    if relationships:
        rels: dict[str, Any] = {}
        for name, kind in relationships.items():
            if name not in record:
                continue
            value = record[name]
            kind = kind or name
            if isinstance(value, list):
                rels[name] = {"data": [{"type": kind, "id": v} for v in value]}
            else:
                rels[name] = {"data": None if value is None else {"type": kind, "id": value}}
        resource["relationships"] = rels
    for name in ("links", "meta"):
        if name in record:
            resource[name] = record[name]
    return resource


def write_document(sink: IO[bytes], envelope: Any, records: Iterable[dict[str, Any]], sort_keys: bool) -> int:
    """Write ``records`` into ``sink`` in ``envelope`` (see ``read/shape.py``); returns the record count."""
    count = 0
    if envelope == "object":
        for record in records:
            sink.write(encode(record, sort_keys))
            count += 1
        return count
    before, after = b"[\n", b"\n]\n"
    convert: Callable[[dict[str, Any]], dict[str, Any]] | None = None
    if isinstance(envelope, dict) and "wrap" in envelope:
        others = envelope.get("others") or {}
        before = b"{" + encode(envelope["wrap"], False) + b": [\n"
        after = b"\n]" + b"".join(b", " + encode(k, False) + b": " + encode(v, sort_keys) for k, v in others.items())
        after += b"}\n"
    elif isinstance(envelope, dict) and "jsonapi" in envelope:
        jsonapi = envelope["jsonapi"]
        others = jsonapi.get("others") or {}
        tail = b"".join(b", " + encode(k, False) + b": " + encode(v, sort_keys) for k, v in others.items())
        before, after = (
            (b'{"data": ', tail + b"}\n") if jsonapi.get("single") else (b'{"data": [\n', b"\n]" + tail + b"}\n")
        )

        def as_resource(record: dict[str, Any]) -> dict[str, Any]:
            return _resource(record, jsonapi)

        convert = as_resource

    sink.write(before)
    for record in records:
        if count:
            sink.write(b",\n")
        sink.write(encode(convert(record) if convert is not None else record, sort_keys))
        count += 1
    sink.write(after)
    return count
