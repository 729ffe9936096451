"""The Dagster code location: assets, the import job, resources."""

from __future__ import annotations

import dagster as dg

from event_pipeline.assets import GROUP, IMPORT_ASSETS
from event_pipeline.assets.checks import CHECKS
from event_pipeline.assets.export import EXPORT_GROUP, export
from event_pipeline.bulk import bulk_import_job
from event_pipeline.resources import DatabaseResource, MediaStorageResource
from event_pipeline.resources.io_manager import RunCachedFilesystemIOManager
from event_pipeline.sensors import SCHEDULES, SENSORS

IMPORT_JOB_NAME = "import_archive"

# In-process: the multiprocess executor costs about 2 s per step here, more
# than a whole import; the steps also share the database engine this way.
import_job = dg.define_asset_job(
    IMPORT_JOB_NAME,
    selection=dg.AssetSelection.groups(GROUP),
    executor_def=dg.in_process_executor,
    description="Import one Open Event archive (partition = archive key).",
)

# The export of an imported event (README: Export); its own group, so never part of an import run.
export_job = dg.define_asset_job(
    "export_archive",
    selection=dg.AssetSelection.groups(EXPORT_GROUP),
    executor_def=dg.in_process_executor,
    description="Export one imported event back to an Open Event zip (partition = archive key).",
)

defs = dg.Definitions(
    assets=[*IMPORT_ASSETS, export],
    asset_checks=CHECKS,
    sensors=SENSORS,
    schedules=SCHEDULES,
    jobs=[import_job, bulk_import_job, export_job],
    resources={
        "database": DatabaseResource(),
        "media_storage": MediaStorageResource(),
        "io_manager": RunCachedFilesystemIOManager(),
    },
)
