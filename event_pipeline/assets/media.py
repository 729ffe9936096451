"""The ``media`` asset: the archive's media files copied to storage, before anything is committed.

It runs after the models it serves (their plans give each row's database id,
the row whose columns get the stored URLs) and outputs a :class:`MediaPlan`
that ``import_result`` applies inside its transaction. The files themselves
were read and checked when the archive was validated (``media/check.py``).
"""

import dagster as dg

from event_pipeline.assets.common import ARCHIVES, GROUP, reported
from event_pipeline.assets.selection import require_whole_import
from event_pipeline.importer import ValidatedArchive
from event_pipeline.media import MediaPlan, prepare
from event_pipeline.model.catalog import MEDIA_MODELS, MODELS
from event_pipeline.resources import DatabaseResource, MediaStorageResource

LOGGED_WARNINGS = 50  # shown in the run's log; all of them are in the result JSON
_INS = {"archive": dg.AssetIn("archive"), **{spec.name: dg.AssetIn(spec.name) for spec in MEDIA_MODELS}}


@dg.asset(
    ins=_INS,
    deps=[MODELS[-1].name] if MODELS[-1].name not in _INS else [],  # after every model
    partitions_def=ARCHIVES,
    group_name=GROUP,
)
def media(
    context: dg.AssetExecutionContext,
    database: DatabaseResource,
    media_storage: MediaStorageResource,
    **inputs,
) -> MediaPlan:
    """Logos, photos, audio, video and slides the archive names, stored once per distinct file (content-addressed)."""
    require_whole_import(context)  # a partial selection is refused, never a silent no-op
    validated: ValidatedArchive = inputs.pop("archive")
    engine = database.engine()
    with reported():
        storage = media_storage.storage()
        if not validated.unchanged:
            context.log.info(f"media: storing into {storage.describe()}")
        plan = prepare(
            engine,
            storage,
            validated,
            inputs,
            run_id=context.run.run_id,
            policy=media_storage.fetch_policy(),
            progress=context.log.info,
        )
    if plan.warnings:  # one event-log entry: each entry is a write to the run storage
        lines = [f"media: {w}" for w in plan.warnings[:LOGGED_WARNINGS]]
        if len(plan.warnings) > LOGGED_WARNINGS:
            lines.append(f"media: {len(plan.warnings) - LOGGED_WARNINGS} more warnings (see the result JSON)")
        context.log.warning("\n".join(lines))
    summary = plan.summary()
    context.log.info(
        f"media: {summary['objects']} objects ({summary['bytes']} bytes), {summary['uploaded']} uploaded "
        f"({summary['bytes_uploaded']} bytes), {summary['reused']} already stored, {summary['missing']} missing"
    )
    context.add_output_metadata(
        {
            "storage": str(summary["storage"]),
            **{k: v for k, v in summary.items() if k not in ("storage", "deleted")},
            "first_warnings": dg.MetadataValue.json([w.as_dict() for w in plan.warnings[:LOGGED_WARNINGS]]),
        }
    )
    return plan
