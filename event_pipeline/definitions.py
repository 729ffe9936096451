"""The Dagster code location: assets, the import job, resources."""

from __future__ import annotations

import dagster as dg

from event_pipeline.assets import IMPORT_ASSETS
from event_pipeline.assets.archive import import_run_config
from event_pipeline.assets.checks import CHECKS
from event_pipeline.assets.export import EXPORT_GROUP, export
from event_pipeline.assets.import_file import import_file_job
from event_pipeline.assets.job import IMPORT_JOB_NAME, import_job
from event_pipeline.assets.report import schedule_report_asset
from event_pipeline.bulk import bulk_import_job
from event_pipeline.import_definitions import location_resources
from event_pipeline.sensors import SCHEDULES, SENSORS

__all__ = ["IMPORT_JOB_NAME", "defs", "export_job", "import_job", "import_run_config"]

# The export of an imported event (README: Export); its own group, so never part of an import run.
export_job = dg.define_asset_job(
    "export_archive",
    selection=dg.AssetSelection.groups(EXPORT_GROUP),
    executor_def=dg.in_process_executor,
    description="Export one imported event back to an Open Event zip (partition = archive key).",
)

defs = dg.Definitions(
    assets=[*IMPORT_ASSETS, schedule_report_asset, export],
    asset_checks=CHECKS,
    sensors=SENSORS,
    schedules=SCHEDULES,
    jobs=[import_job, bulk_import_job, export_job, import_file_job],
    # Every implicit asset job ("Materialize" in the UI, backfills) runs in-process like import_archive.
    executor=dg.in_process_executor,
    resources=location_resources(),
)
