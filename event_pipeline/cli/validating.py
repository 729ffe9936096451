"""``event-pipeline validate``: the dry run, which writes nothing anywhere."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from event_pipeline.cli.importing import checked
from event_pipeline.cli.output import emit
from event_pipeline.cli.signals import settings_module
from event_pipeline.problems import ImportFailed

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine


def _validation_engine(url: str) -> Engine:
    """An engine to diff against, opened without writing: no schema, and no SQLite file, is made.

    A SQLite file that does not exist yet, or a database without the schema,
    means nothing was imported: the diff is against an empty in-memory schema.
    """
    from sqlalchemy.engine import make_url

    from event_pipeline.db import get_engine, has_schema

    empty = "sqlite://"
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database in ("", ":memory:") or not Path(database).is_file():
            return get_engine(empty)
    engine = get_engine(url, create_schema=False)
    return engine if has_schema(engine) else get_engine(empty)


def run_validate(path: str, key: str | None, database_url: str | None) -> int:
    """Dry run: every problem and the would-be diff; writes nothing anywhere (no data folder, no SQLite file)."""
    return emit(validation(path, key, database_url))


def validation(path: str, key: str | None, database_url: str | None) -> dict[str, Any]:
    """The dry run's result (``state`` VALID, INVALID, or FAILURE for an unusable database URL), unprinted.

    What ``event-pipeline validate`` prints, and what the HTTP API's
    ``?dry_run=true`` returns.
    """
    settings = settings_module()
    from event_pipeline import importer
    from event_pipeline.publish import result

    url = settings.database_url(database_url, create=False)
    archive, key, refused = checked(path, key, url)
    if refused:
        state = "FAILURE" if any(p.field == "database_url" for p in refused) else "INVALID"
        return {**result.failure(refused, key=key), "state": state}
    assert key is not None  # a key that breaks the rule is refused
    engine = _validation_engine(url)
    try:
        validated = importer.validate_archive(engine, archive, key, force=True, reserve=False)
    except ImportFailed as exc:
        return {**result.failure(exc.errors, exc.warnings, key), "state": "INVALID"}
    try:
        counts, diff = importer.summarise(importer.plan_all(engine, validated, reserve=False))
        event_name = _event_name(validated)
    finally:
        validated.close()
        importer.release_frozen()  # nothing is published: release here what validation froze
    return {
        "state": "VALID",
        "key": key,
        "event_name": event_name,
        "counts": counts,
        "diff": diff,
        **result.listed(warnings=validated.warnings),
        "unmapped": validated.unmapped,
    }


def _event_name(validated: Any) -> str | None:
    """The archive's event name (a valid archive has its event record)."""
    event = validated.normalised.event if validated.normalised is not None else None
    return event.values.get("name") if event is not None else None
