"""End to end on a real engine: the bulk job on Dagster's Celery executor, two real workers, RabbitMQ.

The Dagster instance lives on one throwaway PostgreSQL database, the imported
events on another. One worker is killed with SIGKILL (its whole process group)
while it is writing an import: nothing of that import is visible, and the
step's message, acknowledged only after a step finishes (``task_acks_late`` in
``deploy/celery.yaml``), is redelivered by RabbitMQ to the other worker, which
imports the archive again. Runs in CI (``CI=true``), where RabbitMQ and
PostgreSQL are up; elsewhere it is skipped if either is missing.
"""

from __future__ import annotations

import os
import signal
import time

import pytest
import sqlalchemy as sa
from celery_cluster import BROKER, Cluster, broker_reachable, synthetic_archive
from conftest import PG_ADMIN

from event_pipeline.db import get_engine

pytestmark = pytest.mark.celery

SMALL = 23  # small archives, plus one big one: 24 in all
SMALL_SESSIONS = 6
BIG_SESSIONS = 12_000  # a few seconds of writing: long enough to be killed in the middle of it
RUN_TIMEOUT = 150


def _require_services() -> None:
    import psycopg

    problems = []
    try:
        psycopg.connect(PG_ADMIN, connect_timeout=5).close()
    except psycopg.OperationalError as exc:
        problems.append(f"PostgreSQL: {exc}")
    if why := broker_reachable(BROKER):
        problems.append(f"RabbitMQ at {BROKER}: {why}")
    if problems:
        if os.environ.get("CI") == "true":
            pytest.fail("required in CI: " + "; ".join(problems))
        pytest.skip("; ".join(problems))


@pytest.fixture
def cluster(tmp_path, isolated_home):
    _require_services()
    cl = Cluster(tmp_path / "cluster", isolated_home)
    try:
        yield cl
    finally:
        for log in sorted(cl.workdir.glob("*.log")):  # shown by pytest only if the test failed
            print(f"----- {log.name} (end) -----\n{log.read_text(errors='replace')[-4000:]}")
        cl.close()


def _say(message: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {message}", flush=True)


def _wait_for(what: str, predicate, timeout: float, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout} s waiting for {what}")


def test_bulk_import_on_two_celery_workers_survives_a_killed_worker(cluster, tmp_path):
    archives = tmp_path / "archives"
    big = synthetic_archive(archives / "big-conf.zip", 999, sessions=BIG_SESSIONS)
    small = [synthetic_archive(archives / f"conf-{i:02d}.zip", i, sessions=SMALL_SESSIONS) for i in range(SMALL)]
    paths = [big, *small]  # the big one is submitted first, so it is killed while most work remains
    expected_sessions = {"big-conf": BIG_SESSIONS, **{f"conf-{i:02d}": SMALL_SESSIONS for i in range(SMALL)}}

    workers = [cluster.start_worker("w1"), cluster.start_worker("w2")]
    cluster.wait_ready(workers)
    _say(f"workers ready on {cluster.broker.rsplit('@', 1)[1]}")
    engine = get_engine(cluster.target_url)
    run = cluster.launch_bulk(paths, "e2e")

    def big_job():
        with engine.connect() as conn:
            return conn.execute(sa.text("select state, pid from import_jobs where key = 'big-conf'")).first()

    def sessions_of(worker, writing: bool = False):
        # The worker's sessions on the events database; writing: one inside a write transaction
        # open for a while, which for the big archive's worker is its import being written.
        query = "select count(*) from pg_stat_activity where datname = current_database() and application_name = :n"
        if writing:
            query += " and backend_xid is not null and xact_start < now() - interval '200 milliseconds'"
        with engine.connect() as conn:
            return conn.execute(sa.text(query), {"n": worker.name}).scalar()

    state, pid = _wait_for("the big archive's import to start", big_job, timeout=90)
    assert state == "RUNNING", state
    victim = next(w for w in workers if w.owns(pid))
    survivor = next(w for w in workers if w is not victim)
    _say(f"big archive being imported by {victim.name} (pid {pid})")
    _wait_for("the big archive's write transaction", lambda: sessions_of(victim, writing=True), 30, 0.02)
    victim.kill(signal.SIGKILL)  # the worker and its pool process, mid-write
    victim.proc.wait(timeout=10)
    _say(f"killed {victim.name} while it was writing")
    _wait_for("the server to end the killed worker's sessions", lambda: sessions_of(victim) == 0, timeout=30)

    # The server rolled the interrupted transaction back: no event, no rows, the job row not closed.
    with engine.connect() as conn:
        assert conn.execute(sa.text("select state from import_jobs where key = 'big-conf'")).scalar() == "RUNNING"
        assert conn.execute(sa.text("select count(*) from events where import_key = 'big-conf'")).scalar() == 0

    assert run.wait(timeout=RUN_TIMEOUT) == 0, (cluster.workdir / "run-e2e.log").read_text()[-5000:]
    _say("bulk run finished")
    dagster_run, _stats = cluster.run_for_tag("e2e")
    assert dagster_run.status.value == "SUCCESS"

    # Every event landed exactly once, complete.
    with engine.connect() as conn:
        events = dict(conn.execute(sa.text("select import_key, id from events")).all())
        assert sorted(events) == sorted(expected_sessions)
        per_event = dict(
            conn.execute(
                sa.text(
                    "select e.import_key, count(s.id) from events e join sessions s on s.event_id = e.id group by 1"
                )
            ).all()
        )
        assert per_event == expected_sessions
        assert conn.execute(sa.text("select count(*) from sessions")).scalar() == sum(expected_sessions.values())
        assert conn.execute(sa.text("select count(*) from speakers")).scalar() == sum(expected_sessions.values())
        duplicates = conn.execute(
            sa.text(
                "select count(*) from (select event_id, source_key from sessions group by 1, 2 having count(*) > 1) d"
            )
        ).scalar()
        assert duplicates == 0
        jobs = conn.execute(sa.text("select key, state, count(*) from import_jobs group by 1, 2")).all()
        assert sorted(jobs) == sorted((key, "SUCCESS", 1) for key in expected_sessions)

    # The killed worker's step was retried by the other worker; both workers imported archives.
    started_by = cluster.step_workers("e2e")
    assert [name.split("@")[0] for name in started_by["import_one[big_conf]"]] == [victim.name, survivor.name]
    names = {name.split("@")[0] for key, names in started_by.items() if key.startswith("import_one[") for name in names}
    assert names == {"w1", "w2"}
    assert survivor.proc.poll() is None
