"""``event-pipeline``: import or validate an archive from the command line.

``import`` runs the Dagster import job in this process on a real Dagster
instance (``DAGSTER_HOME``, else a project-local home), so the run shows up
in the UI afterwards. The last line on stdout is always one JSON object;
Dagster's own logging goes to stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import logging
import os
import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from event_pipeline import settings
from event_pipeline.problems import ImportFailed, Problem


def _emit(payload: dict[str, Any]) -> int:
    sys.stdout.write(json.dumps(payload, ensure_ascii=False, default=str) + "\n")
    sys.stdout.flush()
    return 0 if payload.get("state") in ("SUCCESS", "VALID") else 1


def _failure(errors: list[Problem], key: str | None = None, warnings: list[Problem] | None = None) -> int:
    from event_pipeline import result

    return _emit(result.failure(errors, warnings, key))


def _failed_job(url: str, run_id: str) -> dict[str, Any] | None:
    from event_pipeline.db import get_engine
    from event_pipeline.schema import import_jobs

    with get_engine(url).connect() as conn:
        row = conn.execute(sa.select(import_jobs).where(import_jobs.c.run_id == run_id)).mappings().first()
    return dict(row) if row else None


@contextlib.contextmanager
def _home_lock(home: Path) -> Iterator[None]:
    with open(home / ".event-pipeline.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def run_import(path: str, key: str | None, force: bool, database_url: str | None) -> int:
    """Run the import job in-process; print and return like the CLI does."""
    from event_pipeline.pipeline import key_for

    archive = Path(path).expanduser().resolve()
    key = key or key_for(archive)
    if not archive.is_file():
        return _failure([Problem(archive.name, None, None, f"archive not found: {archive}")], key)
    url = settings.database_url(database_url)
    # The resource reads the URL from the environment, never from run config
    # (which Dagster stores and displays), so a password stays out of it.
    os.environ["EVENT_PIPELINE_DATABASE_URL"] = url
    os.environ["DAGSTER_HOME"] = str(settings.dagster_home())

    import dagster as dg

    from event_pipeline.assets import ARCHIVES
    from event_pipeline.assets.common import HOST_TAG, KEY_TAG, PID_TAG
    from event_pipeline.definitions import IMPORT_JOB_NAME, defs

    with _home_lock(Path(os.environ["DAGSTER_HOME"])):
        # A fresh SQLite-backed home creates its tables on first use; two
        # imports starting at once must not both try.
        instance = dg.DagsterInstance.get()
        instance.get_runs(limit=1)
        instance.all_instigator_state()
        if not instance.has_dynamic_partition(ARCHIVES.name, key):
            instance.add_dynamic_partitions(ARCHIVES.name, [key])
    with instance:
        job = defs.resolve_job_def(IMPORT_JOB_NAME)
        outcome = job.execute_in_process(
            instance=instance,
            partition_key=key,
            run_config={"ops": {"archive": {"config": {"path": str(archive), "force": force}}}},
            tags={
                KEY_TAG: key,
                HOST_TAG: socket.gethostname(),
                PID_TAG: str(os.getpid()),
                "event_pipeline/source": "cli",
            },
            raise_on_error=False,
        )
    if outcome.success:
        return _emit(outcome.output_for_node("import_result"))
    row = _failed_job(url, outcome.run_id)
    if row and row.get("errors"):
        from event_pipeline import result

        errors, warnings = result.from_job(row)
        return _failure(errors, key, warnings)
    step_failures = [e for e in outcome.all_events if e.is_step_failure]
    message = _root_cause(step_failures[0].step_failure_data.error) if step_failures else "import failed"
    return _failure([Problem(None, None, None, message)], key)


def _root_cause(error: Any) -> str:
    """The innermost error's first line: Dagster wraps the real one in its own."""
    while getattr(error, "cause", None) is not None:
        error = error.cause
    lines = error.message.strip().splitlines()
    return lines[0] if lines else "import failed"


def run_validate(path: str, key: str | None, database_url: str | None) -> int:
    """Dry run: every problem and the would-be diff; writes nothing anywhere."""
    from event_pipeline import pipeline, result
    from event_pipeline.db import get_engine, has_schema

    archive = Path(path).expanduser().resolve()
    key = key or pipeline.key_for(archive)
    engine = get_engine(settings.database_url(database_url), create_schema=False)
    if not has_schema(engine):
        engine = get_engine("sqlite://")  # nothing imported yet: diff against an empty schema
    try:
        validated = pipeline.validate_archive(engine, archive, key, force=True, reserve=False)
    except ImportFailed as exc:
        return _emit({**_failure_payload(exc, key), "state": "INVALID"})
    try:
        counts, diff = pipeline.summarise(pipeline.plan_all(engine, validated, reserve=False))
    finally:
        pipeline.release_frozen()  # nothing is published: release here what validation froze
    return _emit(
        {
            "state": "VALID",
            "key": key,
            "event_name": validated.normalised.event.values.get("name"),
            "counts": counts,
            "diff": diff,
            **result.listed(warnings=validated.warnings),
        }
    )


def _failure_payload(exc: ImportFailed, key: str) -> dict[str, Any]:
    from event_pipeline import result

    return result.failure(exc.errors, exc.warnings, key)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="event-pipeline", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    imp = sub.add_parser("import", help="import an archive (runs the Dagster job in-process)")
    imp.add_argument("path", nargs="?", help="the archive zip (default: the bundled example)")
    imp.add_argument("--key", help="partition key (default: file name without .zip)")
    imp.add_argument("--force", action="store_true", help="re-import even if the archive is unchanged")
    imp.add_argument("--database-url", help="SQLAlchemy URL (default: $EVENT_PIPELINE_DATABASE_URL or SQLite)")
    val = sub.add_parser("validate", help="dry run: list every problem and the would-be diff")
    val.add_argument("path")
    val.add_argument("--key")
    val.add_argument("--database-url")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # Everything but the final JSON line goes to stderr.
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING)
    try:
        if args.command == "import":
            return run_import(args.path or str(settings.example_archive()), args.key, args.force, args.database_url)
        return run_validate(args.path, args.key, args.database_url)
    except Exception as exc:  # never a bare traceback: the caller parses our last line
        logging.getLogger("event_pipeline").debug("unexpected error", exc_info=True)
        return _failure([Problem(None, None, None, f"{type(exc).__name__}: {exc}".splitlines()[0])])


def run() -> None:
    """The console script: :func:`main`, then exit without tearing the heap down.

    A large import leaves about 1 GB of Python objects (the run's captured
    outputs) whose one-by-one deallocation at interpreter exit took ~4 s at
    100k sessions, longer than some whole imports. Everything that matters is
    done by now (the transaction committed, the instance closed); output and
    log handlers are flushed, then the process ends at once, as mypy does.
    """
    code = main()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    run()
