"""The ``import_result`` asset: write every model's plan in one transaction."""

import dagster as dg

from event_pipeline.assets import describe
from event_pipeline.assets.common import ARCHIVES, GROUP, reported
from event_pipeline.assets.models import ancestor_output
from event_pipeline.assets.selection import require_whole_import
from event_pipeline.importer import ValidatedArchive, publish_step
from event_pipeline.media import MediaPlan
from event_pipeline.model.catalog import MODELS
from event_pipeline.publish import import_log
from event_pipeline.resources import DatabaseResource


# One input edge, from media (the end of the chain); the archive and the nine plans are ancestors'
# outputs taken from the run's IO manager (see ``assets/models.py``).
@dg.asset(
    ins={"media": dg.AssetIn("media")},
    partitions_def=ARCHIVES,
    group_name=GROUP,
    kinds=describe.kinds(),
    owners=describe.OWNERS,
    tags=describe.TAGS,
    required_resource_keys={"io_manager", "database"},
)
def import_result(context: dg.AssetExecutionContext, media: MediaPlan) -> dict:
    """The imported event: all rows committed at once, and the result JSON (also the run's `import_jobs` row)."""
    require_whole_import(context)  # a partial selection is refused, never a silent no-op
    database: DatabaseResource = context.resources.database
    validated: ValidatedArchive = ancestor_output(context, "archive")
    inputs = {spec.name: ancestor_output(context, spec.name) for spec in MODELS}
    engine = database.engine()
    with reported():
        outcome = publish_step(engine, validated, inputs, context.run.run_id, media=media)
    diff = outcome["diff"]
    context.log.info(
        f"published event {outcome['result']['id']} ({outcome['result']['event_name']}): "
        + ", ".join(f"{diff[k]} {k}" for k in ("created", "updated", "deleted", "unchanged"))
    )
    context.add_output_metadata(
        {
            "event_id": outcome["result"]["id"],
            "url": dg.MetadataValue.url(outcome["result"]["url"]),
            **{k: diff[k] for k in ("created", "updated", "deleted", "unchanged")},
            "counts": dg.MetadataValue.json(outcome["counts"]),
            "warnings": len(outcome["warnings"]),
            "media": dg.MetadataValue.json(outcome.get("media") or {}),
            "warnings_table": describe.warnings_table(
                validated.warnings + media.warnings, outcome.get("warnings_total")
            ),
            "import_jobs": dg.MetadataValue.md(_job_table(database, context.run.run_id)),
        }
    )
    return outcome


def _job_table(database: DatabaseResource, run_id: str) -> str:
    """This run's ``import_jobs`` row (committed with the rows) as a two-column markdown table."""
    row = import_log.get_job(database.engine(), run_id) or {}
    shown = {k: v for k, v in row.items() if k not in ("warnings", "errors", "result")}
    return describe.markdown_table(["column", "value"], shown.items())
