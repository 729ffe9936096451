"""End to end with the real ``dagster-daemon``: drop zips in a folder, see the events imported.

One daemon for the module, on a temporary DAGSTER_HOME holding the project's
dagster.yaml, a drop folder, a SQLite events database and a real SMTP server
on loopback for the notifications. Sensors tick every 5 s here (the daemon's
fastest loop) instead of 15 s.

The load test drops 50 archives at once into the same site and checks each is
imported exactly once, and that the run queue never runs more imports at once
than the instance's ``max_concurrent_runs``.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import signal
import sqlite3
import time
from pathlib import Path

import dagster as dg
import pytest
from archives import kebab_event, write_zip
from conftest import BROKEN_SAMPLE, sample
from processes import BIN, REPO, process, smtp_server, tail, wait_for

from event_pipeline.intake import drop

TIMEOUT = 90  # seconds for one archive to go from the drop folder to the database


class Site:
    def __init__(self, root: Path, mailbox, daemon, log: Path):
        self.root, self.mailbox, self.daemon, self.log = root, mailbox, daemon, log
        self.home, self.drop, self.db = root / "home", root / "drop", root / "events.db"

    def query(self, sql: str, *params) -> list[tuple]:
        if not self.db.exists():
            return []
        with sqlite3.connect(self.db, timeout=30) as conn:
            try:
                return conn.execute(sql, params).fetchall()
            except sqlite3.OperationalError as exc:
                if "no such table" in str(exc):
                    return []
                raise

    def runs(self, key: str) -> list[dg.DagsterRun]:
        with dg.DagsterInstance.from_config(str(self.home)) as instance:
            return list(instance.get_runs(dg.RunsFilter(tags={"dagster/partition": key})))

    def records(self, keys: set[str]) -> list[dg.RunRecord]:
        """The Dagster run records of these archive keys (start and end times included)."""
        with dg.DagsterInstance.from_config(str(self.home)) as instance:
            found = instance.get_run_records(dg.RunsFilter(tags={"event_pipeline/source": "sensor"}))
        return [r for r in found if r.dagster_run.tags.get("event_pipeline/key") in keys]

    def run_limit(self) -> int:
        """``max_concurrent_runs`` as the instance the daemon uses reads it from dagster.yaml."""
        with dg.DagsterInstance.from_config(str(self.home)) as instance:
            return instance.run_coordinator.get_run_queue_config().max_concurrent_runs

    def state(self) -> drop.State:
        """The drop sensor's memory, as the daemon's code server wrote it."""
        return drop.State.load(drop.state_path(str(self.drop.resolve()), self.root / "data"))

    def wait(self, check, what: str, timeout: float = TIMEOUT):
        try:
            return wait_for(check, timeout, what)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n--- daemon log ---\n{tail(self.log)}") from None


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    root = tmp_path_factory.mktemp("daemon")
    (root / "home").mkdir()
    (root / "drop").mkdir()
    shutil.copy(REPO / "dagster.yaml", root / "home" / "dagster.yaml")
    with smtp_server() as (mailbox, port):
        env = {k: v for k, v in os.environ.items() if not k.startswith(("EVENT_PIPELINE_", "AWS_"))}
        env.update(
            DAGSTER_HOME=str(root / "home"),
            EVENT_PIPELINE_DROP_DIR=str(root / "drop"),
            EVENT_PIPELINE_DATA_DIR=str(root / "data"),
            EVENT_PIPELINE_DATABASE_URL=f"sqlite:///{root / 'events.db'}",
            EVENT_PIPELINE_SENSOR_INTERVAL="1",
            EVENT_PIPELINE_SMTP_URL=f"smtp://127.0.0.1:{port}",
            EVENT_PIPELINE_NOTIFY_TO="ops@example.org",
        )
        log = root / "daemon.log"
        args = [str(BIN / "dagster-daemon"), "run", "-w", str(REPO / "workspace.yaml")]
        with process(args, env, log, cwd=root) as daemon:
            yield Site(root, mailbox, daemon, log)


def test_dropped_archives_are_imported_once_and_notified(site):
    for name in ("OTS16", "FOSSASIASummit2014", BROKEN_SAMPLE):
        shutil.copy(sample(name), site.drop / f"{name}.zip")
    (site.drop / "README.txt").write_text("not an archive")

    site.wait(lambda: len(site.query("select id from events")) == 2, "both events in the database")
    names = {name for (name,) in site.query("select name from events")}
    assert names == {"Open Tech Summit 2016", "FOSSASIA Summit 2014"}

    # The broken archive: a failed run with its full error list, in import_jobs and by email.
    site.wait(
        lambda: site.query("select state from import_jobs where key = ?", BROKEN_SAMPLE) == [("FAILURE",)],
        "the broken archive's FAILURE row",
    )
    expected = [
        "Import of event Open Tech Summit 2016 complete",
        "Import of event FOSSASIA Summit 2014 complete",
        f"Import of event {BROKEN_SAMPLE} failed",
    ]
    site.wait(lambda: set(expected) <= set(site.mailbox.subjects()), f"emails {expected}")
    failed = site.mailbox.find(f"Import of event {BROKEN_SAMPLE} failed").get_content()
    [(errors, warnings)] = site.query("select errors, warnings from import_jobs where key = ?", BROKEN_SAMPLE)
    problems = json.loads(errors) + json.loads(warnings or "[]")
    assert "session_types: invalid JSON" in failed
    assert failed.count("\n- ") == len(problems) >= 1  # every error (and warning) of the import listed
    assert all(p["message"] in failed for p in problems)
    [broken_run] = site.runs(BROKEN_SAMPLE)
    assert broken_run.status == dg.DagsterRunStatus.FAILURE
    assert broken_run.tags.get("dagster/will_retry") == "false"  # bad data is not retried

    # The same bytes again (a new mtime): hashed on a later tick, and no second import.
    ots16 = site.drop / "OTS16.zip"
    shutil.copy(sample("OTS16"), ots16)
    mtime = ots16.stat().st_mtime_ns
    site.wait(
        lambda: site.state().files.get("OTS16.zip", [0, 0, None])[1:] == [mtime, drop.file_sha256(ots16)],
        "the sensor to hash the copied file",
    )
    time.sleep(6)  # a full daemon loop: any run that tick asked for exists by now
    assert len(site.runs("OTS16")) == 1
    assert site.query("select count(*) from import_jobs where key = 'OTS16'") == [(1,)]
    assert site.daemon.poll() is None  # the broken archive did not stop anything


def test_a_killed_run_is_marked_failed_and_retried(site):
    """kill -9 the run worker mid-import: its row becomes FAILURE, and the retry imports the archive."""
    shutil.copy(sample("FOSSASIASummit2016"), site.drop / "killme.zip")
    row = site.wait(
        lambda: site.query("select run_id, pid from import_jobs where key = 'killme' and state = 'RUNNING'"),
        "the import of killme to start",
    )
    run_id, pid = row[0]
    os.kill(pid, signal.SIGSTOP)  # frozen: it cannot commit while we look
    still = site.query("select state from import_jobs where run_id = ?", run_id)
    if still != [("RUNNING",)]:
        os.kill(pid, signal.SIGCONT)
        pytest.fail(f"the import finished before it could be killed: {still}")
    os.kill(pid, signal.SIGKILL)

    site.wait(
        lambda: site.query("select state, error from import_jobs where run_id = ?", run_id)[0][0] == "FAILURE",
        "the killed run's row to be marked FAILURE",
    )
    assert site.query("select error from import_jobs where run_id = ?", run_id)[0][0].startswith("interrupted")
    site.wait(lambda: site.query("select name from events where import_key = 'killme'"), "the retried import")
    runs = {run.run_id: run for run in site.runs("killme")}
    assert runs[run_id].status == dg.DagsterRunStatus.FAILURE
    [retry] = [run for run in runs.values() if run.run_id != run_id]
    assert retry.parent_run_id == run_id
    site.wait(
        lambda: "Import of event FOSSASIA Summit 2016 complete" in site.mailbox.subjects(), "the completion email"
    )
    assert not any("killme" in s or "2016 failed" in s for s in site.mailbox.subjects())  # retried, not failed


LOAD = 50
LOAD_TIMEOUT = 480  # seconds for all of them: a bound on liveness, not a speed target (about 150-200 s idle)


def most_at_once(spans: list[tuple[float, float]]) -> int:
    """The largest number of (start, end) spans open at one instant (an end before a start at the same time)."""
    edges = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans])
    open_now = peak = 0
    for _, step in edges:
        open_now += step
        peak = max(peak, open_now)
    return peak


@pytest.mark.load
def test_fifty_archives_dropped_at_once_are_each_imported_once(site):
    """A burst: every archive becomes exactly one run and one event, none lost, and the queue holds the rest."""
    keys = [f"load-{i:02d}" for i in range(LOAD)]
    staging = site.root / "staging"
    for key in keys:
        files = kebab_event()
        files["event"]["name"] = f"Load {key}"
        write_zip(staging / f"{key}.zip", files)
    started = time.monotonic()
    for key in keys:  # a rename: each file appears complete, all within a few milliseconds
        os.replace(staging / f"{key}.zip", site.drop / f"{key}.zip")

    done = "select count(*) from import_jobs where key like 'load-%' and state != 'RUNNING'"
    site.wait(lambda: (site.query(done) or [(0,)])[0][0] >= LOAD, f"{LOAD} finished imports", timeout=LOAD_TIMEOUT)

    def ended() -> list[dg.RunRecord] | None:
        found = site.records(set(keys))
        return found if len(found) >= LOAD and all(r.dagster_run.is_finished for r in found) else None

    records = site.wait(ended, "every load run to end")
    elapsed = time.monotonic() - started

    # Exactly once: one SUCCESS row, one event, one run per key; no duplicated rows inside an event.
    jobs = site.query("select key, state, count(*) from import_jobs where key like 'load-%' group by key, state")
    assert sorted(jobs) == [(key, "SUCCESS", 1) for key in keys]
    events = site.query("select import_key, name from events where import_key like 'load-%' order by import_key")
    assert events == [(key, f"Load {key}") for key in keys]
    sessions = "select count(*) from sessions where event_id in (select id from events where import_key like 'load-%')"
    assert site.query(sessions) == [(3 * LOAD,)]
    by_key = sorted(r.dagster_run.tags["event_pipeline/key"] for r in records)
    assert by_key == keys, "a key ran twice or never"
    assert {r.dagster_run.status for r in records} == {dg.DagsterRunStatus.SUCCESS}

    # Concurrency: never more runs (nor imports inside them) at once than the instance allows, but more than one.
    limit = site.run_limit()
    runs_at_once = most_at_once([(r.start_time, r.end_time) for r in records])
    spans = site.query("select started_at, finished_at from import_jobs where key like 'load-%'")
    imports_at_once = most_at_once([(dt.datetime.fromisoformat(a), dt.datetime.fromisoformat(b)) for a, b in spans])
    print(f"{LOAD} archives in {elapsed:.0f} s; at most {runs_at_once} runs, {imports_at_once} imports at once")
    assert 1 < runs_at_once <= limit, (runs_at_once, limit)
    assert imports_at_once <= limit
    assert site.daemon.poll() is None
