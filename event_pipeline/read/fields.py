"""How the format spells field names and ids, whatever the generation: one rule for each."""

from __future__ import annotations

import re
from typing import Any


def fold_key(key: str) -> str:
    """``starts-at``, ``Starts At`` and ``starts_at`` are one key: ``starts_at``."""
    return key.strip().replace("-", "_").replace(" ", "_").lower()


_INTEGER = re.compile(r"([+-]?)0*([0-9]+)")  # ASCII digits only: a full-width "１" is not the id 1


def canonical_id(value: Any) -> str | None:
    """An id as a canonical string, or None when it is unusable.

    ``7``, ``7.0``, ``"7"``, ``"+007"`` are one id, ``"7"``; digit strings are
    not converted to numbers, so a 5000-digit id stays text (validation then
    refuses it by the ``source_id`` column's length)."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else None
    if isinstance(value, str):
        text = value.strip()
        match = _INTEGER.fullmatch(text)
        if match:
            sign, digits = match.groups()
            return f"-{digits}" if sign == "-" and digits != "0" else digits
        return text or None
    return None


def reference_id(value: Any) -> tuple[str | None, bool]:
    """Parse a reference: ``{"id": 3}``, ``3``, ``"3"``; ``{}``/null mean none.

    Returns (id, usable): usable is False when a value is present but cannot
    be an id, so the caller can warn.
    """
    if isinstance(value, dict):
        value = value.get("id")
    if value is None:
        return None, True
    ref = canonical_id(value)
    return ref, ref is not None


def looks_like_reference(key: str, value: Any) -> bool:
    """``track_id``, ``speaker-id``, ``{"id": 3, ...}`` or a list of such objects: a link, if it were mapped."""
    if value is None:
        return False
    if isinstance(value, dict):
        return "id" in value
    if isinstance(value, list):
        return bool(value) and isinstance(value[0], dict) and "id" in value[0]
    return fold_key(key).endswith("_id")
