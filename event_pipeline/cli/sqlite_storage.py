"""Dagster's SQLite storage kept cheap for the one run of ``event-pipeline import``.

Dagster's SQLite run and event log storage open a fresh connection for every
operation (a new engine with ``NullPool``): a 14-step import makes ~350 of
them, one per event stored and per query. Those databases are in WAL mode,
and when the *last* connection to a WAL database closes, SQLite checkpoints
the log into the database file, syncs it, and deletes the ``-wal`` and
``-shm`` files, which the next connection creates again. So every operation
paid a checkpoint and two file re-creations (~1 ms each on this machine, half
of what one operation cost).

:func:`kept_open` holds one idle connection to each of those files while the
import runs, so Dagster's connections are never the last one: their commits
are ordinary WAL commits (still synced, as SQLite's default ``synchronous``
setting wants), and the log is checkpointed once, when the held connection
closes at the end. An idle WAL connection holds no lock: the webserver, the
daemon or another import use the same files meanwhile as before.

Only SQLAlchemy's public event API is used (no Dagster internals): any
SQLite engine whose database file is inside the Dagster home is Dagster's
storage, whatever its layout; the import's own database is left alone.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine


class _Holder:
    """One idle connection per SQLite file of the home, joined to its WAL once the file is in WAL mode."""

    def __init__(self, home: Path):
        self.home = home.resolve()
        self.lock = threading.Lock()  # Dagster may store events from more than one thread
        self.held: dict[str, sqlite3.Connection] = {}
        self.in_wal: set[str] = set()
        self.paths: dict[str, str | None] = {}  # an engine URL's database -> the file to hold, if in the home

    def on_connect(self, conn: Connection) -> None:
        """SQLAlchemy's ``engine_connect``: hold the file of a Dagster storage connection open."""
        url = conn.engine.url
        if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
            return
        if url.database not in self.paths:
            file = Path(url.database).resolve()
            self.paths[url.database] = str(file) if file.is_relative_to(self.home) else None
        path = self.paths[url.database]
        if path is not None:
            with self.lock:
                self._hold(path)

    def _hold(self, path: str) -> None:
        if path in self.in_wal:
            return
        held = self.held.get(path)
        if held is None:
            held = self.held[path] = sqlite3.connect(path, check_same_thread=False)
        # A new run's event log file is made by the connection that triggered this event, which
        # turns on WAL only after creating its tables. A read joins the held connection to the log
        # (opens the -shm file) if the file is in WAL mode by then, and only a read tells: so this
        # is done again at each connection until it is.
        held.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()
        if held.execute("PRAGMA journal_mode").fetchone() == ("wal",):
            self.in_wal.add(path)

    def close(self) -> None:
        with self.lock:
            for held in self.held.values():
                with contextlib.suppress(sqlite3.Error):
                    held.close()  # the last connection: SQLite checkpoints the log and removes it
            self.held.clear()
            self.in_wal.clear()


@contextlib.contextmanager
def kept_open(home: Path) -> Iterator[None]:
    """For the block, one idle connection is held to each SQLite file inside ``home`` that Dagster opens."""
    holder = _Holder(home)

    def listener(conn: Connection, *_args: Any) -> None:
        holder.on_connect(conn)

    sa.event.listen(Engine, "engine_connect", listener)
    try:
        yield
    finally:
        sa.event.remove(Engine, "engine_connect", listener)
        holder.close()
