"""Shared fixtures: real SQLite and PostgreSQL databases, a Dagster home, the CLI, media storage.

PostgreSQL: one throwaway database per test run (dropped at the end), and a
fresh schema per test inside it, so tests never see each other's rows. In CI
(``CI=true``) a missing PostgreSQL fails the run instead of skipping.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import urllib.parse
import uuid
from collections.abc import Iterator
from contextlib import redirect_stdout
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa

from event_pipeline import cli
from event_pipeline.db import dispose_engines, get_engine
from event_pipeline.importer import release_frozen

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


def pytest_configure(config) -> None:
    config.addinivalue_line(
        "markers", "load: many archives through the real daemon (minutes; runs by default and in CI)"
    )


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
def _close_pools():
    """After each test, its engines' pooled connections are closed: a worker of the parallel suite would
    otherwise keep idle connections to every schema it used, and PostgreSQL serves ~100 in all."""
    yield
    dispose_engines()


@pytest.fixture(autouse=True)
def _collector_back_on():
    """A test that validates an archive and stops there (no publish, no failure hook) leaves what an
    import would release: the frozen objects and the paused garbage collector. Released after each
    test, so a worker of the suite keeps collecting."""
    yield
    release_frozen()


@pytest.fixture(autouse=True)
def isolated_home(tmp_path, monkeypatch) -> Path:
    """Each test gets its own Dagster home and data folder."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv("EVENT_PIPELINE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("EVENT_PIPELINE_DATABASE_URL", raising=False)
    monkeypatch.setenv("EVENT_PIPELINE_DROP_DIR", str(tmp_path / "drop"))
    # Jobs in tests read archives from the test's folder, the samples, the cases and the moto buckets;
    # the roots rule itself is tested in test_api_roots.py.
    roots = [str(tmp_path), str(SAMPLES), str(SAMPLES.parent / "cases"), "s3://"]
    monkeypatch.setenv("EVENT_PIPELINE_ARCHIVE_ROOTS", ",".join(roots))
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


def dump(url: str, *skip: str) -> dict[str, list[tuple]]:
    """Every row of every table the database has (but ``skip``), sorted: a whole database to compare."""
    with get_engine(url).connect() as conn:
        names = [name for name in sa.inspect(conn).get_table_names() if name not in skip]
        return {name: sorted(map(tuple, conn.execute(sa.text(f'select * from "{name}"'))), key=repr) for name in names}


# ---------------------------------------------------------------------------
# Media storage backends: a local folder, or a bucket on a moto S3 server on loopback


@pytest.fixture(scope="session")
def s3_endpoint() -> str:
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one log line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@dataclass
class Backend:
    kind: str
    root: Path | None = None
    bucket: str | None = None
    prefix: str = "media/"
    client: Any = None
    _snapshot: dict[str, Any] = field(default_factory=dict)

    def objects(self) -> dict[str, bytes]:
        """Every stored object (key below the folder or prefix -> bytes), read directly."""
        if self.kind == "local":
            if not self.root.exists():
                return {}
            return {
                p.relative_to(self.root).as_posix(): p.read_bytes()
                for p in self.root.rglob("*")
                if p.is_file()  # temporary files included: none may be left behind
            }
        found = {}
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket):
            for item in page.get("Contents", []):
                body = self.client.get_object(Bucket=self.bucket, Key=item["Key"])["Body"].read()
                assert item["Key"].startswith(self.prefix)
                found[item["Key"][len(self.prefix) :]] = body
        return found

    def writes(self) -> int:
        """How many objects were ever written (S3: object versions; local: distinct files by inode and mtime)."""
        if self.kind == "s3":
            versions = self.client.list_object_versions(Bucket=self.bucket).get("Versions", [])
            return len(versions)
        for p in self.root.rglob("*") if self.root.exists() else []:
            if p.is_file():
                st = p.stat()
                self._snapshot[(p.as_posix(), st.st_ino, st.st_mtime_ns)] = True
        return len(self._snapshot)

    def base(self) -> str:
        return self.root.as_uri() + "/" if self.kind == "local" else f"{self.client.meta.endpoint_url}/{self.bucket}/"

    def is_stored(self, url: str) -> bool:
        return url.startswith(self.base())

    def key_of(self, url: str) -> str:
        assert self.is_stored(url), url
        key = urllib.parse.unquote(url[len(self.base()) :])
        return key.removeprefix(self.prefix) if self.kind == "s3" else key


@pytest.fixture(params=["local", "s3"])
def backend(request, tmp_path, monkeypatch) -> Backend:
    """Media storage of each kind, configured through the environment as in production."""
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.delenv("EVENT_PIPELINE_MEDIA_BASE_URL", raising=False)
    monkeypatch.delenv("EVENT_PIPELINE_MEDIA_FETCH_HOSTS", raising=False)
    if request.param == "local":
        root = tmp_path / "media-root"
        monkeypatch.setenv("EVENT_PIPELINE_MEDIA_ROOT", str(root))
        monkeypatch.delenv("EVENT_PIPELINE_MEDIA_URL", raising=False)
        return Backend("local", root=root.resolve())
    endpoint = request.getfixturevalue("s3_endpoint")
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_CONFIG_FILE": str(tmp_path / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-aws-credentials"),
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    import boto3

    client = boto3.client("s3", region_name="us-east-1")
    bucket = f"media-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=bucket)
    client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    public_read = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{bucket}/*"}
        ],
    }
    client.put_bucket_policy(Bucket=bucket, Policy=json.dumps(public_read))  # the stored URLs are public
    monkeypatch.setenv("EVENT_PIPELINE_MEDIA_URL", f"s3://{bucket}/media")
    return Backend("s3", bucket=bucket, client=client)
