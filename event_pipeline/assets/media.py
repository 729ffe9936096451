"""The ``media`` asset: the archive's media files copied to storage, before anything is committed.

It runs after the models it serves (their plans give each row's database id,
the row whose columns get the stored URLs) and outputs a :class:`MediaPlan`
that ``import_result`` applies inside its transaction. The files themselves
were read and checked when the archive was validated (``media/check.py``).
"""

import dagster as dg

from event_pipeline.assets import describe
from event_pipeline.assets.common import ARCHIVES, GROUP, reported
from event_pipeline.assets.models import ancestor_output
from event_pipeline.assets.selection import require_whole_import
from event_pipeline.importer import ValidatedArchive
from event_pipeline.media import MediaPlan, prepare
from event_pipeline.model.catalog import MEDIA_MODELS, MODELS
from event_pipeline.resources import DatabaseResource, MediaStorageResource

LOGGED_WARNINGS = 50  # shown in the run's log; all of them are in the result JSON


# After the last model of the chain; the archive and the plans of the models with media come from
# the run's IO manager (see ``assets/models.py``), not as edges from each.
@dg.asset(
    deps=[MODELS[-1].name],
    partitions_def=ARCHIVES,
    group_name=GROUP,
    kinds={"python"},
    owners=describe.OWNERS,
    tags=describe.TAGS,
    required_resource_keys={"io_manager", "database", "media_storage"},
)
def media(context: dg.AssetExecutionContext) -> MediaPlan:
    """Logos, photos, audio, video and slides the archive names, stored once per distinct file (content-addressed)."""
    require_whole_import(context)  # a partial selection is refused, never a silent no-op
    database: DatabaseResource = context.resources.database
    media_storage: MediaStorageResource = context.resources.media_storage
    validated: ValidatedArchive = ancestor_output(context, "archive")
    inputs = {spec.name: ancestor_output(context, spec.name) for spec in MEDIA_MODELS}
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
            "warnings": len(plan.warnings),
            "warnings_table": describe.warnings_table(plan.warnings),
        }
    )
    return plan
