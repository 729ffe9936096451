"""Hands-off operation: the drop-folder sensor, run-status sensors, the re-import schedule."""

from event_pipeline.sensors.drop_folder import drop_folder_sensor
from event_pipeline.sensors.reimport import reimport_schedule
from event_pipeline.sensors.run_status import (
    import_canceled_sensor,
    import_failed_sensor,
    import_succeeded_sensor,
    interrupted_imports_sensor,
)

SENSORS = [
    drop_folder_sensor,
    import_succeeded_sensor,
    import_failed_sensor,
    import_canceled_sensor,
    interrupted_imports_sensor,
]
SCHEDULES = [reimport_schedule]

__all__ = ["SCHEDULES", "SENSORS"]
