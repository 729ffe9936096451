"""The ``import_result`` asset: write every model's plan in one transaction."""

import dagster as dg

from event_pipeline.assets.common import ARCHIVES, GROUP, reported
from event_pipeline.assets.selection import require_whole_import
from event_pipeline.importer import ValidatedArchive, publish_step
from event_pipeline.model.catalog import MODELS
from event_pipeline.resources import DatabaseResource


@dg.asset(
    ins={
        "archive": dg.AssetIn("archive"),
        **{spec.name: dg.AssetIn(spec.name) for spec in MODELS},
        "media": dg.AssetIn("media"),
    },
    partitions_def=ARCHIVES,
    group_name=GROUP,
)
def import_result(context: dg.AssetExecutionContext, database: DatabaseResource, **inputs) -> dict:
    """The imported event: all rows committed at once, and the result JSON."""
    require_whole_import(context)  # a partial selection is refused, never a silent no-op
    validated: ValidatedArchive = inputs.pop("archive")
    media = inputs.pop("media")
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
        }
    )
    return outcome
