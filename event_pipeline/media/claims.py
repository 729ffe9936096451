"""Which media objects each import relies on, so cleanups never race and a killed import's leftovers are found.

Objects are content-addressed within an event (``prepare.py``), so two imports of
the same key may rely on one object: one uploads it, the other finds it
already stored. Before an import stores anything it *claims* every object it
will point at (and every one its rows pointed at before) in ``media_claims``,
in a short transaction of its own. Every removal of objects (after a commit,
after a failure, the sweep below) runs under the key's lock and spares the
objects that committed rows point at and those claimed by a live import; a
claim and the listing that follows it cannot interleave with a removal, so an
import never relies on an object that is being removed.

The key's lock is a transaction-level advisory lock on PostgreSQL
(``pg_advisory_xact_lock``) and SQLite's write lock (every transaction is
``BEGIN IMMEDIATE``, see ``db.py``).

A run's claims are released when it has removed what it no longer needs (after
its commit, or after a failure). A run killed with ``kill -9`` leaves them: the
next import of the same key (:func:`sweep`) removes the objects they name that
no row points at, with any unfinished upload of them (a local ``.tmp-`` file,
an S3 multipart upload). A run is live while its ``import_jobs`` row is not
final and its process exists (the same test ``import_jobs`` uses for
interrupted runs: a process on another host counts as live).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import socket
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from event_pipeline.media.storage import Storage, key_event
from event_pipeline.model.schema import database_identity, import_jobs, media_claims
from event_pipeline.problems import ImportFailed, Problem
from event_pipeline.publish.import_log import process_alive

FINAL_STATES = ("SUCCESS", "FAILURE")
_LOCK_NAMESPACE = "event_pipeline/media/"


def media_namespace(engine: Engine) -> str:
    """This database's media namespace (``db-<16 hex digits>``), made when its schema was created."""
    with engine.connect() as conn:
        value = conn.execute(sa.select(database_identity.c.media_namespace)).scalar()
    if value is None:
        message = "the database has no media namespace (table database_identity is empty); it is made with the schema"
        raise ImportFailed([Problem(None, None, None, message)])
    return value


def _lock_id(import_key: str) -> int:
    digest = hashlib.blake2b((_LOCK_NAMESPACE + import_key).encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


@contextlib.contextmanager
def locked(engine: Engine, import_key: str) -> Iterator[Connection]:
    """A transaction holding ``import_key``'s media lock until it ends (commit on success)."""
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:id)"), {"id": _lock_id(import_key)})
        yield conn


def claim(engine: Engine, import_key: str, run_id: str, keys: Iterable[str]) -> None:
    """Record that ``run_id`` relies on ``keys`` (idempotent); call before looking at what is stored."""
    keys = set(keys)
    if not keys:
        return
    with locked(engine, import_key) as conn:
        have = set(conn.execute(sa.select(media_claims.c.object_key).where(media_claims.c.run_id == run_id)).scalars())
        rows = [
            {
                "run_id": run_id,
                "object_key": key,
                "import_key": import_key,
                "host": socket.gethostname(),
                "pid": os.getpid(),
                "claimed_at": datetime.now(UTC),
            }
            for key in sorted(keys - have)
        ]
        for start in range(0, len(rows), 5_000):
            conn.execute(media_claims.insert(), rows[start : start + 5_000])


def release(conn: Connection, run_id: str) -> None:
    """Forget ``run_id``'s claims (inside the transaction that removed what it no longer needs)."""
    conn.execute(media_claims.delete().where(media_claims.c.run_id == run_id))


def _claims_by_run(conn: Connection, import_key: str, other_than: str) -> dict[str, tuple[bool, set[str]]]:
    """run id -> (live, claimed keys) for the key's claims of runs other than ``other_than``."""
    query = (
        sa.select(
            media_claims.c.run_id,
            media_claims.c.object_key,
            media_claims.c.host,
            media_claims.c.pid,
            import_jobs.c.state,
        )
        .select_from(media_claims.outerjoin(import_jobs, import_jobs.c.run_id == media_claims.c.run_id))
        .where(media_claims.c.import_key == import_key, media_claims.c.run_id != other_than)
    )
    runs: dict[str, tuple[bool, set[str]]] = {}
    for run_id, key, host, pid, state in conn.execute(query):
        live = state not in FINAL_STATES and process_alive(host, pid)
        was_live, keys = runs.get(run_id, (True, set()))
        runs[run_id] = (was_live and live, keys | {key})
    return runs


def live_claims(conn: Connection, import_key: str, other_than: str) -> set[str]:
    """The objects that live imports of ``import_key`` other than ``other_than`` rely on."""
    return {k for live, keys in _claims_by_run(conn, import_key, other_than).values() if live for k in keys}


def sweep(engine: Engine, storage: Storage, import_key: str, run_id: str, referenced) -> int:
    """Remove what finished or killed imports of ``import_key`` claimed and no row points at (objects, and
    unfinished uploads of them), and forget their claims. ``referenced(conn, namespace, event_id)`` gives the
    keys an event's rows point at. Returns the number of objects removed. StorageError if the store fails
    (the claims are then kept, for the next try)."""
    with engine.connect() as conn:  # the usual case, nothing to sweep, costs one read and no lock
        if all(live for live, _ in _claims_by_run(conn, import_key, run_id).values()):
            return 0
    with locked(engine, import_key) as conn:
        runs = _claims_by_run(conn, import_key, run_id)
        dead = [r for r, (live, _) in runs.items() if not live]
        if not dead:
            return 0
        live_keys = {k for live, keys in runs.values() if live for k in keys}
        candidates = {k for r in dead for k in runs[r][1]} - live_keys
        keep: set[str] = set()
        for namespace, event_id in {event for k in candidates if (event := key_event(k)) is not None}:
            keep |= referenced(conn, namespace, event_id)
        storage.remove_partial(sorted(candidates))
        removed = storage.delete(sorted(candidates - keep))
        conn.execute(media_claims.delete().where(media_claims.c.run_id.in_(dead)))
    return removed
