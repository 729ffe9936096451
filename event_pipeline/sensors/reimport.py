"""The nightly re-import: every known archive whose source still exists.

Changed archives update in place; keys whose file is gone are skipped with a log line, and so are
local archives whose bytes are those of the key's last import (succeeded or failed): decided here,
from ``import_jobs``, at the cost of hashing the file, so an unchanged broken archive does not fail
(and mail) again on every tick until its bytes change. S3 sources are always launched (the import
itself skips unchanged bytes).
"""

from pathlib import Path

import dagster as dg

from event_pipeline import settings
from event_pipeline.assets.archive import import_run_config
from event_pipeline.assets.common import ARCHIVES_NAME, KEY_TAG
from event_pipeline.assets.job import import_job
from event_pipeline.intake import keys, roots, s3
from event_pipeline.publish.import_log import last_archive_paths, last_outcomes
from event_pipeline.read.private_copy import file_sha256
from event_pipeline.resources import DatabaseResource
from event_pipeline.sensors.common import SOURCE_TAG


def reimport_plan(paths: dict[str, str], known: list[str]) -> tuple[dict[str, str], list[str]]:
    """(key -> source to import, keys skipped because their source is gone or unknown, outside the
    archive roots (a file last imported with the command line: its run would be refused every night),
    or the key breaks the key rule of :mod:`event_pipeline.intake.keys`)."""
    sources = {key: s3.source_for(paths[key]) for key in known if key in paths and not keys.key_error(key)}
    sources = {key: src for key, src in sources.items() if not roots.refusal(src)}
    remote = [src for src in sources.values() if s3.is_s3(src)]
    found = s3.existing(remote) if remote else set()
    todo = {key: src for key, src in sources.items() if (src in found if s3.is_s3(src) else Path(src).is_file())}
    return todo, sorted(set(known) - set(todo))


def unchanged(todo: dict[str, str], outcomes: dict[str, tuple[str, str]]) -> dict[str, str]:
    """Key -> the state of its last import, for each local source whose sha256 equals that import's."""
    same = {}
    for key, source in todo.items():
        if key not in outcomes or s3.is_s3(source):
            continue
        state, sha256 = outcomes[key]
        try:
            if file_sha256(Path(source)) == sha256:
                same[key] = state
        except OSError:  # vanished or unreadable since the listing: the run reports it
            continue
    return same


@dg.schedule(
    name="reimport_schedule",
    job=import_job,
    cron_schedule=settings.current().reimport_cron,
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Re-imports every known archive from its last source (EVENT_PIPELINE_REIMPORT_CRON, default nightly).",
)
def reimport_schedule(context: dg.ScheduleEvaluationContext, database: DatabaseResource):
    known = context.instance.get_dynamic_partitions(ARCHIVES_NAME)
    todo, skipped = reimport_plan(last_archive_paths(database.engine()), list(known))
    for key in skipped:
        context.log.info(f"not re-importing {key}: its archive is gone, outside the archive roots or never imported")
    for key, state in sorted(unchanged(todo, last_outcomes(database.engine())).items()):
        del todo[key]
        verb = "failed" if state == "FAILURE" else "was imported"
        context.log.info(f"not re-importing {key}: unchanged since its last import, which {verb} (same sha256)")
        skipped.append(key)
    if not todo:
        return dg.SkipReason(f"no archive to re-import ({len(skipped)} skipped)")
    tick = context.scheduled_execution_time.isoformat() if context.scheduled_execution_time else "manual"
    return [
        dg.RunRequest(
            run_key=f"{key}:{tick}",
            partition_key=key,
            run_config=import_run_config(source),
            tags={KEY_TAG: key, SOURCE_TAG: "schedule"},
        )
        for key, source in sorted(todo.items())
    ]
