"""The ``export`` asset: an imported event written back to an Open Event zip, one per archive partition.

In its own group (``event_export``), outside the ``import_archive`` job's
selection: an import never exports, an export is launched on its own (the
``export_archive`` job, or "Materialize" in the UI) and reads the event as the
last import committed it. The zip goes to ``<folder>/<key>.zip`` (or
``<key>-<dialect>.zip`` for the fixed dialects); its materialization carries
the path, size and sha256, so two materializations of an unchanged event show
the same hash.
"""

from pathlib import Path

import dagster as dg
from pydantic import Field

from event_pipeline import settings
from event_pipeline.assets.common import ARCHIVES
from event_pipeline.export import DIALECTS, ExportError, export_event
from event_pipeline.resources import DatabaseResource, MediaStorageResource

EXPORT_GROUP = "event_export"


class ExportConfig(dg.Config):
    dialect: str = Field(default="source", description=f"one of {', '.join(DIALECTS)} (README: Export)")
    folder: str | None = Field(default=None, description="where the zip goes; default <data dir>/exports")


@dg.asset(partitions_def=ARCHIVES, group_name=EXPORT_GROUP, deps=["import_result"])
def export(
    context: dg.AssetExecutionContext,
    config: ExportConfig,
    database: DatabaseResource,
    media_storage: MediaStorageResource,
) -> dg.MaterializeResult:
    """The partition's event as an Open Event zip (``event-pipeline export``, the same code)."""
    key = context.partition_key
    folder = Path(config.folder) if config.folder else settings.data_dir() / "exports"
    folder.mkdir(parents=True, exist_ok=True)
    name = f"{key}.zip" if config.dialect == "source" else f"{key}-{config.dialect}.zip"
    try:
        done = export_event(
            database.engine(), folder / name, key=key, dialect=config.dialect, storage=media_storage.storage()
        )
    except ExportError as exc:
        raise dg.Failure(description=str(exc), allow_retries=False) from exc
    context.log.info(f"exported {key} to {done['path']} ({done['size']} bytes, sha256 {done['sha256']})")
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(done["path"]),
            "size": dg.MetadataValue.int(done["size"]),
            "sha256": dg.MetadataValue.text(done["sha256"]),
            "dialect": done["dialect"],
            "event_id": done["event_id"],
            "counts": dg.MetadataValue.json(done["counts"]),
            "media": dg.MetadataValue.json(done["media"]),
            "warnings": len(done["warnings"]),
        }
    )
