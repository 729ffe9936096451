"""The ``import_file`` job: import an archive from the UI by giving only its path.

The ``import_archive`` job needs its partition (the archive key) to exist before
it can be launched, and Dagster's launchpad cannot add one; its config editor
starts empty. ``import_file`` asks for one thing, the archive's path, in a
launch form whose default config is filled in (see README, "Import a file from
the UI"). Its one op checks the path, derives the key from the file name
(``intake/keys.py``), adds the partition, and runs ``import_archive`` for it as
a run of its own (tagged with this run's id), so the partition's assets,
history, ``import_jobs`` row and notifications are exactly an import's.

Only files under the archive roots (``intake/roots.py``: the drop folder, the
upload store, the example, or ``EVENT_PIPELINE_ARCHIVE_ROOTS``) are taken: a
launch form is no way to read arbitrary files of the host the code runs on.
"""

import os
import socket
from pathlib import Path

import dagster as dg
from pydantic import Field

from event_pipeline.assets.archive import import_run_config
from event_pipeline.assets.common import ARCHIVES_NAME, HOST_TAG, KEY_TAG, PID_TAG
from event_pipeline.intake import keys, roots

IMPORT_FILE_JOB_NAME = "import_file"
PARENT_TAG = "event_pipeline/import_file_run"
EXAMPLE_PATH = "<data dir>/uploads/MyEvent2025.zip"


class ImportFileConfig(dg.Config):
    path: str = Field(
        default=EXAMPLE_PATH,
        description="The archive zip, under the archive roots (EVENT_PIPELINE_ARCHIVE_ROOTS: by default the drop "
        "folder and <data dir>/uploads); its file name without .zip is "
        "the archive key (the partition, added if new).",
    )
    force: bool = Field(default=False, description="Re-import even if the archive's bytes are unchanged.")


def checked_archive(path: str) -> tuple[Path, str]:
    """The archive ``path`` names (resolved, symlinks followed) and its key.

    Raises :class:`dagster.Failure` with the reason when the path is the unedited example, is
    outside the archive roots, is not a regular file, or its name gives an invalid key.
    """
    if path.strip() in ("", EXAMPLE_PATH):
        raise dg.Failure(description=f"give the archive's path in the launch form (config: path), not {EXAMPLE_PATH}")
    archive = Path(path).expanduser().resolve()
    refused = roots.refusal(str(archive))
    if refused:
        raise dg.Failure(description=refused, allow_retries=False)
    problem = keys.file_problem(archive)
    key = keys.key_from_name(archive.name)
    error = problem or keys.key_error(key)
    if error:
        raise dg.Failure(description=error, allow_retries=False)
    return archive, key


@dg.op(description="Add the archive's partition and run import_archive for it; fails if that import failed.")
def import_file_op(context: dg.OpExecutionContext, config: ImportFileConfig) -> dict:
    """The import's result JSON; the import itself is its own ``import_archive`` run."""
    from event_pipeline.definitions import IMPORT_JOB_NAME, defs  # the job, resolved with the location's resources

    archive, key = checked_archive(config.path)
    if not context.instance.has_dynamic_partition(ARCHIVES_NAME, key):
        context.instance.add_dynamic_partitions(ARCHIVES_NAME, [key])
        context.log.info(f"added partition {key!r}")
    context.log.info(f"importing {archive} as {key!r}")
    outcome = defs.resolve_job_def(IMPORT_JOB_NAME).execute_in_process(
        instance=context.instance,
        partition_key=key,
        run_config=import_run_config(str(archive), force=config.force),
        tags={
            KEY_TAG: key,
            HOST_TAG: socket.gethostname(),
            PID_TAG: str(os.getpid()),
            "event_pipeline/source": "import_file",
            PARENT_TAG: context.run_id,
        },
        raise_on_error=False,
    )
    context.log.info(f"import_archive run {outcome.run_id}: {'SUCCESS' if outcome.success else 'FAILURE'}")
    if not outcome.success:
        raise dg.Failure(
            description=f"the import of {key!r} failed: see run {outcome.run_id}",
            metadata={"import_run": outcome.run_id},
            allow_retries=False,
        )
    result = outcome.output_for_node("import_result")
    context.add_output_metadata({"import_run": outcome.run_id, "key": key, "event_id": result["result"]["id"]})
    return result


@dg.job(
    name=IMPORT_FILE_JOB_NAME,
    executor_def=dg.in_process_executor,
    description="Import one archive by its path: adds the partition (key = file name) and runs import_archive.",
    config=dg.RunConfig(ops={"import_file_op": ImportFileConfig()}),
    tags={"event_pipeline/source": "import_file"},
)
def import_file_job() -> None:
    import_file_op()
