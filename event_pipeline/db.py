"""Engines for SQLite and PostgreSQL URLs, created once per URL per process."""

from __future__ import annotations

import functools
import json
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Engine, make_url

from event_pipeline.model.migrate import upgrade_schema


def normalise_url(url: str) -> str:
    """Plain ``postgresql://`` URLs use psycopg 3, the driver this project installs."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


BACKENDS = ("sqlite", "postgresql")


def json_text(value: Any) -> str:
    """The text a JSON column stores for ``value``: orjson's (UTF-8 as is, no spaces), or ``json.dumps``'s
    for what orjson refuses (an integer beyond 64 bits, a lone surrogate, a key that is no string).

    Every engine of :func:`get_engine` and the ``COPY`` of ``publish/write.py`` serialise with it, so both
    backends store the same text. The two give the same values back (``json.loads``); orjson would write
    NaN as ``null``, but no stored value holds one (the parser's hooks screen them out, ``read/data_files.py``).
    orjson was ~1 s of the ``COPY`` of 100 000 sessions' ``extra`` (``json.dumps`` 1.4 s under cProfile)."""
    try:
        return orjson.dumps(value).decode()
    except (TypeError, orjson.JSONEncodeError):
        return json.dumps(value)


def url_problem(url: str) -> str | None:
    """Why ``url`` is not a database URL this project takes (the URL masked in the message), or None."""
    from event_pipeline.redact import mask

    try:
        backend = make_url(url).get_backend_name()
    except Exception:  # noqa: BLE001 - SQLAlchemy raises ArgumentError, or ValueError for a bad port
        backend = None
    if backend in BACKENDS:
        return None
    what = f"a {backend} database, which is not supported" if backend else "not a database URL"
    return (
        f"{what}: {mask(url)!r}; give a SQLite or PostgreSQL URL such as"
        " postgresql://user:password@host:5432/dbname or sqlite:///path/to/events.db"
    )


_created: list[Engine] = []  # every engine get_engine made, so dispose_engines can close their pools


def dispose_engines() -> None:
    """Close the pooled connections of every engine :func:`get_engine` made, and forget the engines.

    For a process that goes through many databases (the test suite: one
    schema per test): each engine keeps a pool of idle connections, and a
    PostgreSQL server takes ~100 connections in all.
    """
    get_engine.cache_clear()
    while _created:
        _created.pop().dispose()


@functools.lru_cache(maxsize=16)
def get_engine(url: str, create_schema: bool = True) -> Engine:
    """An engine for ``url``; on first use the schema is created, or upgraded to the newest Alembic
    revision (:func:`event_pipeline.model.migrate.upgrade_schema`), unless ``create_schema`` is false."""
    url = normalise_url(url)
    if url.startswith("sqlite"):
        # The driver's own BEGIN is deferred: a transaction that reads first and
        # then writes fails at once with "database is locked" when another
        # import holds the write lock. Emit BEGIN IMMEDIATE ourselves, so a
        # second import waits (up to the timeout) and then goes on.
        engine = sa.create_engine(url, connect_args={"timeout": 60, "isolation_level": None}, json_serializer=json_text)

        @sa.event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record):  # noqa: ANN001
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.close()

        @sa.event.listens_for(engine, "begin")
        def _begin_immediate(conn):  # noqa: ANN001
            conn.exec_driver_sql("BEGIN IMMEDIATE")
    else:
        engine = sa.create_engine(url, pool_pre_ping=True, json_serializer=json_text)
    _created.append(engine)
    if create_schema:
        upgrade_schema(engine)
    return engine


def has_schema(engine: Engine) -> bool:
    return sa.inspect(engine).has_table("events")
