"""One import per archive key at a time, across processes and machines.

On PostgreSQL an import holds a session-level advisory lock on a hash of its
key (``pg_advisory_lock``) from before it reads the event until after it
commits: a second import of the same key, from any worker on any machine,
waits for it; imports of different keys never wait for each other. The lock
lives on its own connection, so it is released when the import ends, and
also when its process dies (the server ends the session and its locks).

On SQLite this is a no-op: SQLite is one machine's file, and its writes are
already serialised (``BEGIN IMMEDIATE``, see ``db.py``).
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable, Iterator

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError

from event_pipeline import settings

# Keys of other uses of advisory locks in the same database cannot collide
# with ours unless their 64-bit hash does; a collision only makes two keys wait
# for each other, never breaks correctness.
NAMESPACE = "event_pipeline/import/"
LOCK_NOT_AVAILABLE = "55P03"


class KeyLockTimeout(RuntimeError):
    """Another import of the same key held its lock for longer than the timeout."""


def lock_id(key: str) -> int:
    """The advisory lock id of ``key``: a stable signed 64-bit hash (the same on every machine)."""
    digest = hashlib.blake2b((NAMESPACE + key).encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def lock_timeout() -> float:
    """``EVENT_PIPELINE_LOCK_TIMEOUT`` seconds."""
    return settings.current().lock_timeout


def holder_pids(engine: Engine, key: str) -> list[int]:
    """Server pids of the sessions holding ``key``'s lock (for messages and tests)."""
    if engine.dialect.name != "postgresql":
        return []
    value = lock_id(key) & 0xFFFFFFFFFFFFFFFF
    with engine.connect() as conn:
        return list(
            conn.execute(
                sa.text(
                    "select pid from pg_locks where locktype = 'advisory' and granted"
                    " and classid::bigint = :hi and objid::bigint = :lo and objsubid = 1"
                ),
                {"hi": value >> 32, "lo": value & 0xFFFFFFFF},
            ).scalars()
        )


@contextlib.contextmanager
def key_lock(
    engine: Engine,
    key: str,
    *,
    timeout: float | None = None,
    on_wait: Callable[[list[int]], None] | None = None,
) -> Iterator[None]:
    """Hold ``key``'s advisory lock for the ``with`` block (PostgreSQL; a no-op elsewhere).

    Waits at most ``timeout`` seconds (default ``EVENT_PIPELINE_LOCK_TIMEOUT``,
    30 minutes), then raises :class:`KeyLockTimeout`. ``on_wait`` is called
    once, with the holders' server pids, if the lock is taken when we ask.
    """
    if engine.dialect.name != "postgresql":
        yield
        return
    timeout = lock_timeout() if timeout is None else timeout
    ident = lock_id(key)
    # The lock belongs to the session, not to a transaction: every statement
    # here is committed at once, so this connection is never left "idle in
    # transaction" while the import runs on other connections.
    conn = engine.connect()
    try:
        got = conn.execute(sa.text("select pg_try_advisory_lock(:id)"), {"id": ident}).scalar()
        conn.commit()
        if not got:
            if on_wait is not None:
                on_wait(holder_pids(engine, key))
            _wait(conn, ident, key, timeout)
        try:
            yield
        finally:
            _release(conn, ident)
    finally:
        conn.close()


def _wait(conn: sa.Connection, ident: int, key: str, timeout: float) -> None:
    """Block in the server (woken as soon as the holder lets go), at most ``timeout`` seconds."""
    millis = max(1, int(timeout * 1000))
    try:
        with conn.begin():  # SET LOCAL needs a transaction; the session lock outlives it
            conn.execute(sa.text("select set_config('lock_timeout', :ms, true)"), {"ms": str(millis)})
            conn.execute(sa.text("select pg_advisory_lock(:id)"), {"id": ident})
    except OperationalError as exc:
        if getattr(exc.orig, "sqlstate", None) == LOCK_NOT_AVAILABLE:
            raise KeyLockTimeout(
                f"another import of {key!r} held its lock for more than {timeout:g} s (EVENT_PIPELINE_LOCK_TIMEOUT)"
            ) from None
        raise


def _release(conn: sa.Connection, ident: int) -> None:
    try:
        released = conn.execute(sa.text("select pg_advisory_unlock(:id)"), {"id": ident}).scalar()
        conn.commit()
    except Exception:
        released = False
    if not released:
        # Never hand a connection that may still hold the lock back to the
        # pool: closing the session is what certainly releases it.
        conn.invalidate()
