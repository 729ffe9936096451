"""Column values back into JSON values: ids, instants with their offset, the source's value types.

``types`` is the list of JSON type names an archive's key had (``read/shape.py``):
a text column whose source values were numbers gives numbers back, a form
stored as text that came as an object gives the object back, and so on.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, tzinfo
from typing import Any

_DIGITS = re.compile(r"-?[0-9]+")


def typed_id(source_id: str | None, types: list[str] | tuple[str, ...] = ("int",)) -> Any:
    """A canonical id as the archive wrote it: a number when its ids were numbers (and this one is
    digits), else text. ``types`` lists the JSON types the ids had."""
    if source_id is None:
        return None
    if ("int" in types or "float" in types) and "str" not in types and _DIGITS.fullmatch(source_id):
        return int(source_id)
    return source_id


def instant(value: datetime, zone: tzinfo | None) -> str:
    """An instant (stored in UTC) as ISO 8601 with the offset of the event's zone (UTC without one)."""
    if value.tzinfo is None:  # SQLite hands back naive values; they are UTC
        value = value.replace(tzinfo=UTC)
    return value.astimezone(zone or UTC).isoformat()


def json_value(value: Any, types: list[str] | tuple[str, ...], zone: tzinfo | None) -> Any:
    """A column's value as the JSON type the archive used for it (``types``, null excluded); a value that
    does not convert is written as the column holds it."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return instant(value, zone)
    kinds = [t for t in types if t != "NoneType"]
    if not kinds:
        return value
    if isinstance(value, str):
        if set(kinds) <= {"int", "float"} or set(kinds) <= {"dict", "list"}:
            try:
                parsed = json.loads(value)
            except ValueError:
                return value
            if type(parsed).__name__ in kinds:
                return parsed
        return value
    if isinstance(value, bool):
        return value
    if isinstance(value, float) and kinds == ["int"] and value.is_integer():
        return int(value)
    if isinstance(value, (int, float)) and kinds == ["str"]:
        return str(value)
    return value
