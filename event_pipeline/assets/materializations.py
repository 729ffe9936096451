"""Asset materializations for an import made outside the asset job (the bulk job's ``import_one`` op).

The bulk job imports an archive with the same plain steps as the asset job
(``event_pipeline.importer``) in one op; so that its imports show in the asset
catalog as the asset job's do, the op records one ``dg.AssetMaterialization``
per asset of the import graph (the archive, the nine models, media and
``import_result``) for the archive's partition, with the figures the asset job
would attach (per model: records and the diff).
"""

from __future__ import annotations

from typing import Any

import dagster as dg

from event_pipeline.assets import describe
from event_pipeline.model.catalog import MODELS
from event_pipeline.problems import Problem

DIFF_KINDS = ("created", "updated", "deleted", "unchanged")


def of_import(outcome: dict[str, Any], *, partition: str, source: str) -> list[dg.AssetMaterialization]:
    """The materializations of one committed import. ``outcome``: the SUCCESS result of
    :func:`event_pipeline.importer.publish_step`; ``partition``: the archive key; ``source``: what made it
    (shown in each description, e.g. ``"bulk import, import_jobs run_id <id>"``)."""
    diff = outcome["diff"]
    by_model = diff.get("by_model") or {}
    counts = outcome["counts"]
    common = {"unchanged_archive": outcome["unchanged_archive"]}

    def made(asset: str, metadata: dict[str, Any]) -> dg.AssetMaterialization:
        return dg.AssetMaterialization(
            asset_key=asset, partition=partition, description=f"imported by the {source}", metadata=metadata
        )

    events = [made("archive", {**common, "warnings": len(outcome["warnings"])})]
    warnings = [Problem(**w) for w in outcome["warnings"]]  # the listed ones (a bounded number)
    for spec in MODELS:
        model_diff = by_model.get(spec.name) or {}
        mine = [w for w in warnings if describe.concerns(spec, w.file)]
        metadata = {"records": counts[spec.table], "dagster/row_count": counts[spec.table], **_diff(model_diff)}
        metadata["warnings_table"] = describe.warnings_table(mine)
        events.append(made(spec.name, {**common, **metadata}))
    events.append(made("media", {**common, "media": dg.MetadataValue.json(outcome.get("media") or {})}))
    events.append(
        made(
            "import_result",
            {
                **common,
                "event_id": outcome["result"]["id"],
                "url": dg.MetadataValue.url(outcome["result"]["url"]),
                **_diff(diff),
                "counts": dg.MetadataValue.json(counts),
            },
        )
    )
    return events


def _diff(diff: dict[str, Any]) -> dict[str, int]:
    return {k: int(diff.get(k) or 0) for k in DIFF_KINDS}
