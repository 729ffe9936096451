"""The import job with only what it runs, for ``event-pipeline import``.

The code location (:mod:`event_pipeline.definitions`) also holds the bulk job,
the export, the schedule report, the sensors and the schedule; loading them
cost the command ~0.1 s of its start-up for modules an import never runs
(dagster-celery's executor and, through it, Dagster's gRPC layer). The
command resolves its job here instead: the same assets, checks, job,
executor and resources as the code location's, so the same job (its
snapshot, stored with every run, is identical; ``tests/test_cli_and_graph.py``
checks that).
"""

from __future__ import annotations

from typing import Any

import dagster as dg

from event_pipeline.assets import IMPORT_ASSETS
from event_pipeline.assets.checks import CHECKS
from event_pipeline.assets.job import IMPORT_JOB_NAME, import_job
from event_pipeline.resources import DatabaseResource, MediaStorageResource
from event_pipeline.resources.io_manager import RunCachedFilesystemIOManager

__all__ = ["IMPORT_JOB_NAME", "import_defs", "location_resources"]


def location_resources() -> dict[str, Any]:
    """The resources the code location binds, the import job's among them (one definition for both)."""
    return {
        "database": DatabaseResource.from_settings(),
        "media_storage": MediaStorageResource.from_settings(),
        "io_manager": RunCachedFilesystemIOManager(),
    }


import_defs = dg.Definitions(
    assets=IMPORT_ASSETS,
    asset_checks=CHECKS,
    jobs=[import_job],
    executor=dg.in_process_executor,
    resources=location_resources(),
)
