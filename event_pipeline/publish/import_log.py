"""The ``import_jobs`` table: one row per run, whoever started it.

A row is opened as RUNNING when the archive has been read, and closed as
SUCCESS inside the import's own transaction (so SUCCESS and the data commit
together) or as FAILURE after a rollback.
"""

from __future__ import annotations

import os
import socket
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from event_pipeline.model.schema import import_jobs
from event_pipeline.problems import Problem
from event_pipeline.redact import mask


def _now() -> datetime:
    return datetime.now(UTC)


def open_job(engine: Engine, *, key: str, run_id: str, path: str | None, sha256: str | None) -> None:
    """Record that ``run_id`` started importing ``key`` (idempotent per run)."""
    with engine.begin() as conn:
        exists = conn.execute(sa.select(import_jobs.c.id).where(import_jobs.c.run_id == run_id)).first()
        if exists:
            conn.execute(
                import_jobs.update()
                .where(import_jobs.c.run_id == run_id)
                .values(state="RUNNING", archive_path=path, archive_sha256=sha256)
            )
        else:
            conn.execute(
                import_jobs.insert().values(
                    key=key,
                    run_id=run_id,
                    archive_path=path,
                    archive_sha256=sha256,
                    state="RUNNING",
                    started_at=_now(),
                    host=socket.gethostname(),
                    pid=os.getpid(),
                )
            )


def process_alive(host: str | None, pid: int | None) -> bool:
    """False only when we can tell: same host, and no such process any more."""
    if host != socket.gethostname() or pid is None:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def fail_interrupted(engine: Engine, key: str, run_id: str) -> list[str]:
    """Mark RUNNING rows of ``key`` whose process died on this host (kill -9, power loss) as FAILURE.

    Returns their run ids. Rows from other hosts are left to the run-status
    sensor, which sees the Dagster run fail.
    """
    host = socket.gethostname()
    with engine.begin() as conn:
        stale = conn.execute(
            sa.select(import_jobs.c.run_id, import_jobs.c.pid).where(
                import_jobs.c.key == key,
                import_jobs.c.state == "RUNNING",
                import_jobs.c.run_id != run_id,
                import_jobs.c.host == host,
            )
        ).all()
        dead = [row.run_id for row in stale if not process_alive(host, row.pid)]
    for dead_run in dead:
        mark_interrupted(engine, key=key, run_id=dead_run)
    return dead


INTERRUPTED = "interrupted: the importing process ended without finishing"


def mark_interrupted(engine: Engine, *, key: str, run_id: str) -> None:
    with engine.begin() as conn:
        close_job(conn, key=key, run_id=run_id, state="FAILURE", error=INTERRUPTED)


def close_job(conn: Connection, *, key: str, run_id: str, state: str, **values: Any) -> None:
    """Close the run's row (creating it if the run never opened one, e.g. a re-execution)."""
    values = {"state": state, "finished_at": _now(), **values}
    if values.get("error"):
        values["error"] = mask(values["error"])  # it may quote a driver's message, and a URL in it
    updated = conn.execute(import_jobs.update().where(import_jobs.c.run_id == run_id).values(**values)).rowcount
    if not updated:
        conn.execute(import_jobs.insert().values(key=key, run_id=run_id, started_at=_now(), **values))


def record_failure(
    engine: Engine,
    *,
    key: str,
    run_id: str,
    error: str,
    errors: list[Problem],
    warnings: list[Problem],
    path: str | None = None,
    sha256: str | None = None,
) -> None:
    """Close the run's row as FAILURE with every problem kept (``max_problems`` of each severity) and,
    in ``result``, the totals and counts per kind of all of them."""
    from event_pipeline.publish import result

    extra = {k: v for k, v in (("archive_path", path), ("archive_sha256", sha256)) if v is not None}
    with engine.begin() as conn:
        close_job(
            conn,
            key=key,
            run_id=run_id,
            state="FAILURE",
            error=error,
            errors=result.stored(errors),
            warnings=result.stored(warnings),
            result=result.problem_counts(errors, warnings),
            **extra,
        )


def last_archive_path(engine: Engine, key: str) -> str | None:
    """The file a key was last imported from, for re-imports launched without a path."""
    with engine.connect() as conn:
        return conn.execute(
            sa.select(import_jobs.c.archive_path)
            .where(import_jobs.c.key == key, import_jobs.c.archive_path.is_not(None))
            .order_by(import_jobs.c.id.desc())
            .limit(1)
        ).scalar()


def last_archive_paths(engine: Engine) -> dict[str, str]:
    """Every key's last archive path in one query (the schedule's list of known archives)."""
    latest = (
        sa.select(import_jobs.c.key, sa.func.max(import_jobs.c.id).label("id"))
        .where(import_jobs.c.archive_path.is_not(None))
        .group_by(import_jobs.c.key)
        .subquery()
    )
    query = sa.select(import_jobs.c.key, import_jobs.c.archive_path).join(latest, import_jobs.c.id == latest.c.id)
    with engine.connect() as conn:
        return {key: path for key, path in conn.execute(query)}


def get_job(engine: Engine, run_id: str) -> dict[str, Any] | None:
    with engine.connect() as conn:
        row = conn.execute(sa.select(import_jobs).where(import_jobs.c.run_id == run_id)).mappings().first()
    return dict(row) if row else None


def last_successes(engine: Engine, key: str | None = None) -> dict[str, dict[str, Any]]:
    """Key -> its last SUCCESS row, for ``key`` only or every key, keeping only keys whose event
    (``events.import_key``) still exists: what the asset checks compare the database with."""
    from event_pipeline.model.schema import events

    latest = sa.select(import_jobs.c.key, sa.func.max(import_jobs.c.id).label("id")).where(
        import_jobs.c.state == "SUCCESS", import_jobs.c.event_id.is_not(None)
    )
    if key is not None:
        latest = latest.where(import_jobs.c.key == key)
    newest = latest.group_by(import_jobs.c.key).subquery()
    query = (
        sa.select(import_jobs)
        .join(newest, import_jobs.c.id == newest.c.id)
        .join(events, sa.and_(events.c.import_key == import_jobs.c.key, events.c.id == import_jobs.c.event_id))
    )
    with engine.connect() as conn:
        return {row["key"]: dict(row) for row in conn.execute(query).mappings()}


def note_sha256(engine: Engine, run_id: str, sha256: str) -> None:
    """Record the archive's sha256 on the run's row (a failed validation: the schedule skips those bytes)."""
    with engine.begin() as conn:
        conn.execute(import_jobs.update().where(import_jobs.c.run_id == run_id).values(archive_sha256=sha256))


def last_outcomes(engine: Engine) -> dict[str, tuple[str, str]]:
    """Key -> (state, archive sha256) of its last ended import whose sha256 is known, in one query."""
    ended = sa.and_(import_jobs.c.state.in_(("SUCCESS", "FAILURE")), import_jobs.c.archive_sha256.is_not(None))
    latest = sa.select(import_jobs.c.key, sa.func.max(import_jobs.c.id).label("id")).where(ended)
    newest = latest.group_by(import_jobs.c.key).subquery()
    query = sa.select(import_jobs.c.key, import_jobs.c.state, import_jobs.c.archive_sha256).join(
        newest, import_jobs.c.id == newest.c.id
    )
    with engine.connect() as conn:
        return {key: (state, sha) for key, state, sha in conn.execute(query)}


def jobs_of_bulk_run(engine: Engine, run_id: str) -> list[dict[str, Any]]:
    """The rows of a bulk run's imports (``run_id`` ``<run id>/<index>``, see ``bulk.bulk_job_id``), in order."""
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(import_jobs).where(import_jobs.c.run_id.like(f"{run_id}/%")).order_by(import_jobs.c.id)
        ).mappings()
        return [dict(row) for row in rows]


def close_unfinished(engine: Engine, *, key: str, run_id: str, error: str, path: str | None = None) -> dict[str, Any]:
    """Mark the run's row FAILURE unless it already ended (creating it if the run never opened one).

    For runs that ended without closing their row: killed, canceled from the
    UI, failed before the import began, or a partial selection.
    """
    with engine.begin() as conn:
        state = conn.execute(sa.select(import_jobs.c.state).where(import_jobs.c.run_id == run_id)).scalar()
        if state in (None, "RUNNING"):
            extra = {"archive_path": path} if state is None and path else {}
            problem = Problem(None, None, None, mask(error))
            close_job(conn, key=key, run_id=run_id, state="FAILURE", error=error, errors=[problem.as_dict()], **extra)
    return get_job(engine, run_id) or {}


def event_name(engine: Engine, key: str) -> str | None:
    """The imported event's name for a key, if it was ever imported."""
    from event_pipeline.model.schema import events

    with engine.connect() as conn:
        return conn.execute(sa.select(events.c.name).where(events.c.import_key == key)).scalar()


def previous_success_sha256(engine: Engine, key: str, before_id: int) -> str | None:
    """The archive sha256 of ``key``'s last SUCCESS row before row ``before_id`` (None if none).

    The same bytes as that import mean the run found the archive unchanged
    (unless forced): what the CLI reports when it rebuilds a result from a row.
    """
    with engine.connect() as conn:
        return conn.execute(
            sa.select(import_jobs.c.archive_sha256)
            .where(import_jobs.c.key == key, import_jobs.c.state == "SUCCESS", import_jobs.c.id < before_id)
            .order_by(import_jobs.c.id.desc())
            .limit(1)
        ).scalar()
