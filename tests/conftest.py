"""Shared fixtures: real SQLite and PostgreSQL databases, a Dagster home, the CLI.

PostgreSQL: one throwaway database per test run (dropped at the end), and a
fresh schema per test inside it, so tests never see each other's rows. In CI
(``CI=true``) a missing PostgreSQL fails the run instead of skipping.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import uuid
from collections.abc import Iterator
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa

from event_pipeline import cli
from event_pipeline.db import get_engine

PG_ADMIN = os.environ.get("EVENT_PIPELINE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
REPO = Path(__file__).resolve().parents[1]
SAMPLES = Path(os.environ.get("EVENT_PIPELINE_SAMPLES", REPO.parent / "shared" / "samples"))
GOOD_SAMPLES = ["FOSSASIASummit2014", "FOSSASIASummit2015", "FOSSASIASummit2016", "OTS16"]
BROKEN_SAMPLE = "FOSSASIASummit2011"
# The reference server's import order, written out here rather than read from the code under test.
REFERENCE_ORDER = [
    "event",
    "social_links",
    "custom_forms",
    "microlocations",
    "sponsors",
    "speakers",
    "tracks",
    "session_types",
    "sessions",
]


def sample(name: str) -> Path:
    path = SAMPLES / f"{name}.zip"
    if not path.exists():
        pytest.skip(f"sample archives not found at {SAMPLES}")
    return path


@contextlib.contextmanager
def throwaway_database(prefix: str) -> Iterator[str]:
    """A PostgreSQL database created here and dropped afterwards; yields its name.

    In CI (``CI=true``) an unreachable server fails the test instead of skipping it.
    """
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    try:
        admin = psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL is required in CI: {exc}")
        pytest.skip(f"PostgreSQL not reachable: {exc}")
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield name
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def pg_database() -> str:
    """A PostgreSQL database created for this test run and dropped after it."""
    with throwaway_database("ep_test") as name:
        yield f"{PG_ADMIN.rsplit('/', 1)[0]}/{name}"
        get_engine.cache_clear()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path) -> str:
    """A fresh, empty database of each kind."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'events.db'}"
    base = request.getfixturevalue("pg_database")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    return f"{base}?options=-csearch_path%3D{schema}"


@pytest.fixture(autouse=True)
def isolated_home(tmp_path, monkeypatch) -> Path:
    """Each test gets its own Dagster home and data folder."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv("EVENT_PIPELINE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("EVENT_PIPELINE_DATABASE_URL", raising=False)
    monkeypatch.setenv("EVENT_PIPELINE_DROP_DIR", str(tmp_path / "drop"))
    return home


def run_cli(*args: str) -> tuple[int, dict[str, Any], str]:
    """Run ``event-pipeline`` in-process; return exit code, the last stdout line as JSON, all stdout."""
    buffer = io.StringIO()
    with redirect_stdout(buffer):
        code = cli.main(list(args))
    out = buffer.getvalue()
    last = out.strip().splitlines()[-1]
    return code, json.loads(last), out


def import_archive(path: Path | str, url: str, *extra: str) -> tuple[int, dict[str, Any]]:
    code, payload, _ = run_cli("import", str(path), "--database-url", url, *extra)
    return code, payload


def rows(url: str, query: str, **params: Any) -> list[sa.Row]:
    with get_engine(url).connect() as conn:
        return list(conn.execute(sa.text(query), params))


def scalar(url: str, query: str, **params: Any) -> Any:
    with get_engine(url).connect() as conn:
        return conn.execute(sa.text(query), params).scalar()
