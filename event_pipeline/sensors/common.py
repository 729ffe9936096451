"""What the sensors and the schedule share."""

from __future__ import annotations

import os

# definitions.py's IMPORT_JOB_NAME; repeated here because definitions.py
# imports this package (Dagster validates that the job exists).
IMPORT_JOB = "import_archive"
SOURCE_TAG = "event_pipeline/source"  # who asked for the run: sensor, schedule, cli
MARKER_TAG = "event_pipeline/marker"  # the sha256 or ETag the sensor saw
USER_TAG = "event_pipeline/user"  # the API user (token email) who uploaded the archive; gets the result email


def interval_seconds() -> int:
    """``EVENT_PIPELINE_SENSOR_INTERVAL`` (default 15 s): how often the sensors tick, read at load time."""
    return max(1, int(os.environ.get("EVENT_PIPELINE_SENSOR_INTERVAL") or 15))


def run_config(path: str) -> dict:
    return {"ops": {"archive": {"config": {"path": path}}}}
