"""The result JSON: the reference server's task result, extended."""

from __future__ import annotations

from typing import Any

from event_pipeline.problems import Problem, summary
from event_pipeline.settings import base_url


def success(
    *,
    event_name: str,
    event_id: int,
    identifier: str,
    key: str,
    counts: dict[str, int],
    diff: dict[str, Any],
    warnings: list[Problem],
    unmapped: dict[str, dict[str, int]] | None = None,
    unchanged_archive: bool = False,
) -> dict[str, Any]:
    """The SUCCESS result. ``unmapped``: per data file, the source fields that are no column nor link
    (kept in each row's ``extra``) with how many records have them."""
    return {
        "state": "SUCCESS",
        "result": {"event_name": event_name, "id": event_id, "url": f"{base_url()}/events/{identifier}"},
        "key": key,
        "counts": counts,
        "diff": diff,
        "warnings": [w.as_dict() for w in warnings],
        "unmapped": unmapped or {},
        "unchanged_archive": unchanged_archive,
    }


def failure(errors: list[Problem], warnings: list[Problem] | None = None, key: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "state": "FAILURE",
        "error": summary(errors),
        "errors": [e.as_dict() for e in errors],
        "warnings": [w.as_dict() for w in warnings or []],
    }
    if key is not None:
        out["key"] = key
    return out
