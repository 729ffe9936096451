"""What the sensors and the schedule share."""

from __future__ import annotations

from event_pipeline import settings
from event_pipeline.assets.job import IMPORT_JOB_NAME

IMPORT_JOB = IMPORT_JOB_NAME  # the job the sensors and the schedule start (they target the job object itself)

SOURCE_TAG = "event_pipeline/source"  # who asked for the run: sensor, schedule, cli
MARKER_TAG = "event_pipeline/marker"  # the sha256 or ETag the sensor saw
USER_TAG = "event_pipeline/user"  # the API user (token email) who uploaded the archive; gets the result email


def interval_seconds() -> int:
    """``EVENT_PIPELINE_SENSOR_INTERVAL`` (default 5 s): how often the sensors tick, read at load time."""
    return max(1, settings.current().sensor_interval)
