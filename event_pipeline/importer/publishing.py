"""Step 3, publish: every plan and the SUCCESS row of ``import_jobs`` in one transaction."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from event_pipeline.collector import release_frozen
from event_pipeline.importer.planning import plan_all, summarise
from event_pipeline.importer.validating import ValidatedArchive
from event_pipeline.model.catalog import ModelSpec, upstream
from event_pipeline.model.schema import events
from event_pipeline.plan.diff import Amend, ModelPlan, event_target, planned_rows
from event_pipeline.publish import import_log, result, statistics
from event_pipeline.publish.write import ConcurrentImport, publish

if TYPE_CHECKING:
    from event_pipeline.media import MediaPlan


PUBLISH_ATTEMPTS = 3


def publish_step(
    engine: Engine,
    validated: ValidatedArchive,
    plans: dict[str, ModelPlan],
    run_id: str,
    *,
    before_commit: Callable[[Connection], None] | None = None,
    media: MediaPlan | None = None,
) -> dict[str, Any]:
    """Write every plan and the SUCCESS job row in one transaction; return the result JSON.

    If another import of the same key committed since the plans were made
    (the CLI and the sensor at once), the plans are stale: plan again against
    the new state and retry, so concurrent imports end up one after the other.

    ``media`` (the media asset's output) puts the stored URLs into the rows in
    the same transaction; if the import fails, the objects it uploaded are
    removed, and after the commit those no row points at any more.
    """
    try:
        for attempt in range(1, PUBLISH_ATTEMPTS + 1):
            try:
                outcome = _publish_once(engine, validated, plans, run_id, before_commit, media)
            except (ConcurrentImport, IntegrityError):
                if attempt == PUBLISH_ATTEMPTS or validated.unchanged:
                    if media is not None:
                        media.discard(engine)
                    raise
                validated = replace(validated, target=event_target(engine, validated.key))
                plans = plan_all(engine, validated)
                if media is not None:
                    media = media.replan(engine, validated, plans)
                continue
            except BaseException:
                if media is not None:
                    media.discard(engine)
                raise
            if media is not None:
                media.after_commit(engine)
                outcome["media"] = media.summary()
            statistics.refresh(engine, plans)  # what the checks and the next import plan their reads with
            return outcome
        raise AssertionError("unreachable")
    finally:
        release_frozen()


def _publish_once(
    engine: Engine,
    validated: ValidatedArchive,
    plans: dict[str, ModelPlan],
    run_id: str,
    before_commit: Callable[[Connection], None] | None,
    media: MediaPlan | None = None,
) -> dict[str, Any]:
    media_updates: dict[str, list[dict[str, Any]]] = {}
    amend: dict[str, Amend] = {}
    if media is not None and not validated.unchanged:
        media.ensure_stored(engine, run_id)  # uploads happen before the commit
        amend, media_updates = media.apply(plans)
    counts, diff = summarise(plans)
    event_id = validated.target.event_id
    warnings = validated.warnings + (media.warnings if media is not None else [])
    with engine.begin() as conn:
        if not validated.unchanged:
            rows = functools.partial(_planned_rows, validated, plans, amend)
            publish(conn, plans, validated.sha256, rows, before_commit=before_commit)
            if media is not None:
                media.write(conn, media_updates)
        name, identifier = conn.execute(
            sa.select(events.c.name, events.c.identifier).where(events.c.id == event_id)
        ).one()
        outcome = result.success(
            event_name=name,
            event_id=event_id,
            identifier=identifier,
            key=validated.key,
            counts=counts,
            diff=diff,
            warnings=warnings,
            unmapped=validated.unmapped,
            unchanged_archive=validated.unchanged,
        )
        import_log.close_job(
            conn,
            key=validated.key,
            run_id=run_id,
            state="SUCCESS",
            event_id=event_id,
            archive_path=validated.path,
            archive_sha256=validated.sha256,
            result=outcome["result"],
            counts=counts,
            diff=diff,
            warnings=result.stored(warnings),  # every warning kept, not only those the result lists
            unmapped=outcome["unmapped"],
        )
    return outcome


def _planned_rows(
    validated: ValidatedArchive, plans: dict[str, ModelPlan], amend: dict[str, Amend], spec: ModelSpec, kind: int
) -> Iterator[dict[str, Any]]:
    """The rows ``spec``'s plan inserts or updates (``kind``), built from the archive's records and the id maps
    of the plans, with the media plan's amendment."""
    maps = {name: plans[name].id_map for name in upstream(spec)}
    return planned_rows(plans[spec.name], spec, validated.records(spec), maps, kind, amend.get(spec.name))
