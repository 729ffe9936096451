"""The drop-folder sensor: a new or changed zip becomes a partition and an import run."""

import dagster as dg

from event_pipeline.assets.archive import import_run_config
from event_pipeline.assets.common import ARCHIVES, ARCHIVES_NAME, KEY_TAG
from event_pipeline.assets.job import import_job
from event_pipeline.intake import drop
from event_pipeline.sensors.common import MARKER_TAG, SOURCE_TAG, interval_seconds


def requests_for(context: dg.SensorEvaluationContext, scan: drop.Scan) -> dg.SensorResult:
    for name, reason in scan.ignored:
        # A name that is not UTF-8 arrives with lone surrogates, which a log file could not take.
        printable = name.encode("utf-8", "backslashreplace").decode("utf-8")
        context.log.info(f"ignoring {printable}: {reason}")
    if not scan.requests:
        return dg.SensorResult(
            skip_reason=f"nothing new ({len(scan.waiting)} waiting to be stable)" if scan.waiting else "nothing new",
            cursor=scan.cursor.dump(),
        )
    known = set(context.instance.get_dynamic_partitions(ARCHIVES_NAME))
    new_keys = sorted({r.key for r in scan.requests} - known)
    runs = []
    for request in scan.requests:
        context.log.info(f"{request.key}: {request.path} ({request.marker[:12]}), import #{request.generation}")
        runs.append(
            dg.RunRequest(
                run_key=request.run_key,
                partition_key=request.key,
                run_config=import_run_config(request.path),
                tags={KEY_TAG: request.key, SOURCE_TAG: "sensor", MARKER_TAG: request.marker},
            )
        )
    return dg.SensorResult(
        run_requests=runs,
        dynamic_partitions_requests=[ARCHIVES.build_add_request(new_keys)] if new_keys else [],
        cursor=scan.cursor.dump(),
    )


@dg.sensor(
    name="drop_folder_sensor",
    job=import_job,
    minimum_interval_seconds=interval_seconds(),
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Imports every new or changed *.zip in EVENT_PIPELINE_DROP_DIR (or EVENT_PIPELINE_DROP_URL, s3://).",
)
def drop_folder_sensor(context: dg.SensorEvaluationContext):
    return requests_for(context, drop.evaluate(context.cursor))
