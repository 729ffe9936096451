"""The Dagster code location: assets, the import job, resources."""

from __future__ import annotations

import dagster as dg

from event_pipeline.assets import IMPORT_ASSETS
from event_pipeline.assets.archive import import_run_config
from event_pipeline.assets.checks import CHECKS
from event_pipeline.assets.import_file import import_file_job
from event_pipeline.assets.job import IMPORT_JOB_NAME, import_job
from event_pipeline.assets.report import schedule_report_asset
from event_pipeline.bulk import bulk_import_job
from event_pipeline.resources import DatabaseResource, MediaStorageResource
from event_pipeline.resources.io_manager import RunCachedFilesystemIOManager
from event_pipeline.sensors import SCHEDULES, SENSORS

__all__ = ["IMPORT_JOB_NAME", "defs", "import_job", "import_run_config"]

defs = dg.Definitions(
    assets=[*IMPORT_ASSETS, schedule_report_asset],
    asset_checks=CHECKS,
    sensors=SENSORS,
    schedules=SCHEDULES,
    jobs=[import_job, bulk_import_job, import_file_job],
    resources={
        "database": DatabaseResource.from_settings(),
        "media_storage": MediaStorageResource.from_settings(),
        "io_manager": RunCachedFilesystemIOManager(),
    },
)
