"""``event-pipeline export KEY OUT.zip``: the command's work, kept out of ``cli/``.

Prints (through the CLI's printer) ``{"state": "SUCCESS", "export": {...}}``
with the zip's path, size and sha256 (see :func:`writer.export_event`), or
``{"state": "FAILURE", "error": ...}`` naming why nothing was written.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from event_pipeline import settings
from event_pipeline.db import get_engine
from event_pipeline.export.rows import ExportError
from event_pipeline.export.writer import export_event
from event_pipeline.problems import Problem
from event_pipeline.redact import mask


def run(
    key: str | None, out: str, event_id: int | None, dialect: str, database_url: str | None
) -> tuple[dict[str, Any] | None, list[Problem]]:
    """Export one event; returns (the export's result, []) or (None, the problems that stopped it).

    The database must already hold the event: a URL whose SQLite file does not exist is refused
    rather than created empty."""
    url = settings.database_url(database_url, create=False)
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///").split("?")[0]).is_file():
        return None, [Problem(None, None, "database_url", f"no database at {mask(url)}")]
    target = Path(out)
    if target.is_dir() or not target.parent.is_dir():
        return None, [Problem(None, None, "out", f"cannot write {out}: not a file in an existing folder")]
    try:
        return export_event(get_engine(url), target, key=key, event_id=event_id, dialect=dialect), []
    except ExportError as exc:
        return None, [Problem(None, None, None, str(exc))]
