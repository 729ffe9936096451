"""The command line tells the truth: its printed state is what was committed, however the run ends.

Real processes of the installed console script, real signals, real databases
(SQLite and PostgreSQL): the JSON line, the exit code, the ``import_jobs``
rows and the Dagster runs are read back independently.
"""

from __future__ import annotations

import errno
import importlib
import io
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa
from archives import kebab_event, write_zip
from conftest import import_archive, rows, run_cli, sample, scalar

from event_pipeline import cli
from event_pipeline.db import get_engine
from event_pipeline.resources import io_manager
from event_pipeline.settings import example_archive

CLI = str(Path(sys.executable).parent / "event-pipeline")
HOSTILE = Path(os.environ.get("EVENT_PIPELINE_CASES", Path(__file__).resolve().parents[2] / "shared" / "cases"))
SURROGATE_CASE = HOSTILE / "hostile" / "lone-surrogate-in-reference.zip"
# The bundled example, counted from its JSON (tests/test_cli_and_graph.py reads the same numbers).
EXAMPLE_SESSIONS = 3
EXAMPLE_LINKS = 3


def _env(**extra: str) -> dict[str, str]:
    return {**os.environ, **extra}


def _cli(*args: str, env: dict[str, str] | None = None, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run([CLI, *args], capture_output=True, timeout=timeout, env=env or _env())


def _one_line(stdout: bytes) -> dict:
    lines = stdout.decode("utf-8", errors="strict").strip().splitlines()
    assert len(lines) == 1, stdout[-2000:]
    return json.loads(lines[0])


def _jobs(url: str) -> list[tuple]:
    """(key, state, error) of every import_jobs row; none if the table was never made."""
    engine = get_engine(url, create_schema=False)
    if not sa.inspect(engine).has_table("import_jobs"):
        return []
    return [tuple(r) for r in rows(url, "select key, state, error from import_jobs order by id")]


def _runs() -> list[dg.DagsterRun]:
    with dg.DagsterInstance.get() as instance:
        return list(instance.get_runs())


# --- printing never fails --------------------------------------------------------------


def test_emit_escapes_what_the_stream_cannot_encode(monkeypatch):
    payload = {"state": "SUCCESS", "warnings": [{"message": "id \ud800 and caf\u00e9"}]}
    for encoding in ("utf-8", "ascii"):
        raw = io.BytesIO()
        stream = io.TextIOWrapper(raw, encoding=encoding, errors="strict")
        monkeypatch.setattr(sys, "stdout", stream)
        assert cli._emit(payload) == 0
        text = raw.getvalue().decode("ascii")  # escaped: pure ASCII either way
        assert text.endswith("\n") and "\\ud800" in text
        assert json.loads(text) == payload

    raw = io.BytesIO()
    monkeypatch.setattr(sys, "stdout", io.TextIOWrapper(raw, encoding="utf-8", errors="strict"))
    assert cli._emit({"state": "VALID", "event_name": "caf\u00e9"}) == 0
    assert raw.getvalue() == '{"state": "VALID", "event_name": "café"}\n'.encode()  # readable when it can be


def test_emit_on_a_closed_stdout_still_returns_the_state(monkeypatch):
    stream = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")
    stream.close()
    monkeypatch.setattr(sys, "stdout", stream)
    assert cli._emit({"state": "SUCCESS"}) == 0
    assert cli._emit({"state": "FAILURE"}) == 1


@pytest.mark.parametrize(
    "env",
    [{}, {"PYTHONIOENCODING": "ascii"}, {"LC_ALL": "C", "LANG": "C", "PYTHONUTF8": "0"}],
    ids=["utf8", "ascii", "c-locale"],
)
def test_non_ascii_event_name_prints_on_any_stdout(db_url, tmp_path, env):
    docs = kebab_event()
    docs["event"]["name"] = "Café Ünïcode 会议"
    archive = write_zip(tmp_path / "unicode.zip", docs)
    proc = _cli("import", str(archive), "--database-url", db_url, env=_env(**env))
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = _one_line(proc.stdout)
    assert result["state"] == "SUCCESS"
    assert result["result"]["event_name"] == "Café Ünïcode 会议"
    if env:
        assert proc.stdout.isascii()
    assert _jobs(db_url) == [("unicode", "SUCCESS", None)]


@pytest.mark.parametrize("encoding", ["utf-8", "ascii"])
def test_lone_surrogate_case_prints_what_was_committed(db_url, encoding):
    """The hostile case: the import committed, and the CLI used to print FAILURE (UnicodeEncodeError)."""
    if not SURROGATE_CASE.exists():
        pytest.skip(f"hostile cases not found at {HOSTILE}")
    proc = _cli("import", str(SURROGATE_CASE), "--database-url", db_url, env=_env(PYTHONIOENCODING=encoding))
    assert proc.stdout.isascii()  # the surrogate can only be printed escaped
    result = _one_line(proc.stdout)
    [(key, state, _error)] = _jobs(db_url)
    assert key == "lone-surrogate-in-reference"
    assert result["state"] == state  # the printed state is the committed one
    assert proc.returncode == (0 if state == "SUCCESS" else 1)
    events = scalar(db_url, "select count(*) from events")
    assert events == (1 if state == "SUCCESS" else 0)
    if state == "SUCCESS":  # the reference "\ud800" to a missing track is a warning, printed exactly
        assert {
            "file": "sessions",
            "record_id": "1",
            "field": "track",
            "message": "refers to tracks id \ud800, which the archive lacks; link left empty",
        } in result["warnings"]


# --- a failure after the commit still reports the commit ----------------------------------


def _disk_full_after_publish(monkeypatch):
    """Writing import_result's output pickle fails (disk full) after its transaction committed."""
    original = io_manager._RunCachedIOManager.handle_output

    def handle_output(self, context, obj):
        if context.asset_key.to_user_string() == "import_result":
            raise OSError(errno.ENOSPC, "No space left on device")
        return original(self, context, obj)

    monkeypatch.setattr(io_manager._RunCachedIOManager, "handle_output", handle_output)


def _output_lost(monkeypatch):
    """The run succeeded, and reading its result back out of Dagster fails."""

    def output_for_node(self, *args, **kwargs):
        raise RuntimeError("output lost")

    monkeypatch.setattr(dg.ExecuteInProcessResult, "output_for_node", output_for_node)


@pytest.mark.parametrize("fault", [_disk_full_after_publish, _output_lost])
def test_failure_after_commit_still_prints_success(db_url, monkeypatch, fault):
    fault(monkeypatch)
    code, result, out = run_cli("import", str(example_archive()), "--database-url", db_url)
    assert code == 0, result
    assert len(out.strip().splitlines()) == 1
    [job] = rows(db_url, "select key, state, event_id, result, archive_sha256 from import_jobs")
    assert (job.key, job.state) == ("example-event", "SUCCESS")
    event = rows(db_url, "select id, name, identifier from events")[0]
    assert result["state"] == "SUCCESS" and result["key"] == "example-event"
    assert result["result"]["id"] == event.id == job.event_id
    assert result["result"]["event_name"] == event.name == "Example Open Tech Day"
    assert result["result"]["url"].endswith(f"/events/{event.identifier}")
    assert result["counts"]["sessions"] == EXAMPLE_SESSIONS and result["counts"]["session_speakers"] == EXAMPLE_LINKS
    assert result["diff"]["created"] == sum(v for k, v in result["counts"].items() if k != "session_speakers")
    assert result["unchanged_archive"] is False
    assert [run.status for run in _runs()] == [
        dg.DagsterRunStatus.FAILURE if fault is _disk_full_after_publish else dg.DagsterRunStatus.SUCCESS
    ]

    # Again, same bytes: the rebuilt result says unchanged, as the job's own would.
    code, again, _ = run_cli("import", str(example_archive()), "--database-url", db_url)
    assert code == 0 and again["state"] == "SUCCESS" and again["unchanged_archive"] is True
    assert again["diff"]["created"] == 0 and again["diff"]["unchanged"] == result["diff"]["created"]
    code, forced, _ = run_cli("import", str(example_archive()), "--database-url", db_url, "--force")
    assert code == 0 and forced["unchanged_archive"] is False
    assert [r[0] for r in rows(db_url, "select state from import_jobs")] == ["SUCCESS"] * 3


def test_a_run_failing_before_its_row_exists_still_ends_with_a_failure_row(db_url, monkeypatch):
    """The archive step fails before it opens its row (here: the interrupted-run sweep raises)."""

    def boom(*args, **kwargs):
        raise RuntimeError("instance unavailable")

    monkeypatch.setattr(importlib.import_module("event_pipeline.assets.archive"), "fail_interrupted_runs", boom)
    code, result, _ = run_cli("import", str(example_archive()), "--database-url", db_url)
    assert code == 1
    assert result["state"] == "FAILURE" and result["error"] == "RuntimeError: instance unavailable"
    assert _jobs(db_url) == [("example-event", "FAILURE", "RuntimeError: instance unavailable")]


# --- signals ----------------------------------------------------------------------------


def _maps(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return ""


def _wait(check, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_during_start_up_prints_one_failure_line(db_url, signum):
    proc = subprocess.Popen(
        [CLI, "import", str(sample("OTS16")), "--database-url", db_url],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    # pydantic's compiled core is first loaded while Dagster is imported: the slow part of start-up.
    _wait(lambda: "pydantic_core" in _maps(proc.pid) or proc.poll() is not None, 60, "the import of dagster")
    assert proc.poll() is None
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1
    name = signal.Signals(signum).name
    assert _one_line(out) == {
        "state": "FAILURE",
        "error": f"interrupted by {name} before anything was committed",
        "errors": [
            {
                "file": None,
                "record_id": None,
                "field": None,
                "message": f"interrupted by {name} before anything was committed",
            }
        ],
        "warnings": [],
        "errors_total": 1,
        "warnings_total": 0,
    }
    assert b"Traceback" not in err
    assert _jobs(db_url) == []
    assert _runs() == []


def _big_archive(tmp_path: Path, sessions: int = 12000) -> Path:
    docs = kebab_event()
    docs["sessions"] = [
        {"id": i, "title": f"Session {i}", "track": {"id": 1 + i % 2}, "speakers": [{"id": 1 + i % 3}]}
        for i in range(1, sessions + 1)
    ]
    return write_zip(tmp_path / "big.zip", docs)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_during_the_import_closes_the_row_and_commits_nothing(db_url, tmp_path, signum):
    archive = _big_archive(tmp_path)
    proc = subprocess.Popen(
        [CLI, "import", str(archive), "--database-url", db_url], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )

    def running() -> bool:
        try:
            return ("big", "RUNNING", None) in _jobs(db_url) or proc.poll() is not None
        except sa.exc.OperationalError:  # SQLite: the file or its tables are being made
            return False

    _wait(running, 120, "the run's RUNNING row")
    assert proc.poll() is None
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=120)
    message = f"interrupted by {signal.Signals(signum).name} during the import"
    assert proc.returncode == 1, err[-3000:]
    assert _one_line(out) == {
        "state": "FAILURE",
        "error": message,
        "errors": [{"file": None, "record_id": None, "field": None, "message": message}],
        "warnings": [],
        "errors_total": 1,
        "warnings_total": 0,
        "key": "big",
    }
    assert _jobs(db_url) == [("big", "FAILURE", message)]
    assert scalar(db_url, "select count(*) from events") == 0
    assert scalar(db_url, "select count(*) from sessions") == 0
    [run] = _runs()
    assert run.status == dg.DagsterRunStatus.FAILURE

    # The next import of the key is not disturbed by the interrupted one.
    code, result = import_archive(archive, db_url)
    assert code == 0 and result["counts"]["sessions"] == 12000
    assert [row[1] for row in _jobs(db_url)] == ["FAILURE", "SUCCESS"]
    assert _jobs(db_url)[0][2] == message  # the interrupted row keeps its own reason


# --- usage errors -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["import", "--bogus"], "unrecognized arguments: --bogus"),
        (
            ["frobnicate"],
            "argument command: invalid choice: 'frobnicate' "
            "(choose from 'import', 'validate', 'export', 'db', 'token')",
        ),
        (["validate"], "the following arguments are required: path"),
        (["db"], "the following arguments are required: action"),
        (["db", "downgrade"], "argument action: invalid choice: 'downgrade' (choose from 'upgrade')"),
        ([], "the following arguments are required: command"),
    ],
)
def test_usage_errors_print_usage_and_a_failure_line(args, error, tmp_path):
    proc = _cli(*args, env=_env(EVENT_PIPELINE_DATA_DIR=str(tmp_path / "untouched")))
    assert proc.returncode == 2
    assert _one_line(proc.stdout) == {
        "state": "FAILURE",
        "error": f"usage: {error}",
        "errors": [{"file": None, "record_id": None, "field": None, "message": f"usage: {error}"}],
        "warnings": [],
        "errors_total": 1,
        "warnings_total": 0,
    }
    stderr = proc.stderr.decode()
    assert stderr.startswith("usage: event-pipeline") and stderr.endswith(f"error: {error}\n")
    assert not (tmp_path / "untouched").exists()


# --- not an archive ------------------------------------------------------------------------


def _special_files(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    fifo = tmp_path / "pipe.zip"
    os.mkfifo(fifo)
    folder = tmp_path / "folder.zip"
    folder.mkdir()
    return {
        "fifo": (fifo, "a FIFO (named pipe)"),
        "device": (Path("/dev/zero"), "a device"),
        "directory": (folder, "a directory"),
    }


@pytest.mark.parametrize("kind", ["fifo", "device", "directory"])
@pytest.mark.parametrize("command", ["validate", "import"])
def test_fifos_devices_and_directories_are_refused_at_once(db_url, tmp_path, kind, command):
    path, what = _special_files(tmp_path)[kind]
    data = tmp_path / "no-data-dir"
    started = time.monotonic()
    proc = _cli(command, str(path), "--database-url", db_url, env=_env(EVENT_PIPELINE_DATA_DIR=str(data)), timeout=60)
    assert time.monotonic() - started < 30  # refused, not read (a FIFO would block, /dev/zero never ends)
    message = f"not an archive: {path} is {what}, not a regular file"
    key = path.name.removesuffix(".zip")
    assert proc.returncode == 1
    assert _one_line(proc.stdout) == {
        "state": "INVALID" if command == "validate" else "FAILURE",
        "error": f"{path.name}: {message}",
        "errors": [{"file": path.name, "record_id": None, "field": None, "message": message}],
        "warnings": [],
        "errors_total": 1,
        "warnings_total": 0,
        "key": key,
    }
    assert _jobs(db_url) == [] and _runs() == []
    assert not data.exists()


# --- validate writes nothing -----------------------------------------------------------------


def test_validate_creates_no_data_dir_and_no_sqlite_file(tmp_path, monkeypatch):
    data = tmp_path / "fresh" / "data"
    monkeypatch.setenv("EVENT_PIPELINE_DATA_DIR", str(data))
    code, result, _ = run_cli("validate", str(sample("OTS16")))  # the default database: SQLite in the data dir
    assert code == 0 and result["state"] == "VALID" and result["counts"]["sessions"] == 82
    assert not data.exists() and not (tmp_path / "fresh").exists()

    db = tmp_path / "never" / "events.db"
    db.parent.mkdir()
    code, result, _ = run_cli("validate", str(sample("OTS16")), "--database-url", f"sqlite:///{db}")
    assert code == 0 and result["state"] == "VALID"
    assert list(db.parent.iterdir()) == []  # no file, no -wal or -shm either
    code, result, _ = run_cli("validate", str(sample("FOSSASIASummit2011")), "--database-url", f"sqlite:///{db}")
    assert code == 1 and result["state"] == "INVALID"
    assert list(db.parent.iterdir()) == [] and not data.exists()


def test_validate_console_script_writes_nothing(tmp_path):
    box = tmp_path / "box"
    box.mkdir()
    env = _env(EVENT_PIPELINE_DATA_DIR=str(box / "data"), DAGSTER_HOME=str(box / "home"))
    env.pop("EVENT_PIPELINE_DATABASE_URL", None)
    proc = subprocess.run([CLI, "validate", str(sample("OTS16"))], capture_output=True, timeout=180, env=env, cwd=box)
    assert proc.returncode == 0 and _one_line(proc.stdout)["state"] == "VALID"
    assert list(box.iterdir()) == []


def test_an_unsupported_database_is_named():
    from event_pipeline.db import url_problem

    assert url_problem("mysql://u:pw@h/db") == (
        "a mysql database, which is not supported: 'mysql://u:***@h/db'; give a SQLite or PostgreSQL URL such as"
        " postgresql://user:password@host:5432/dbname or sqlite:///path/to/events.db"
    )


def test_an_unusable_database_url_is_refused_before_anything_runs(tmp_path):
    url = "host=127.0.0.1 dbname=events"
    message = (
        f"not a database URL: {url!r}; give a SQLite or PostgreSQL URL such as"
        " postgresql://user:password@host:5432/dbname or sqlite:///path/to/events.db"
    )
    for command, state in (("import", "FAILURE"), ("validate", "FAILURE")):
        code, result, _ = run_cli(command, str(sample("OTS16")), "--database-url", url)
        assert code == 1
        assert result == {
            "state": state,
            "error": f"database_url: {message}",
            "errors": [{"file": None, "record_id": None, "field": "database_url", "message": message}],
            "warnings": [],
            "errors_total": 1,
            "warnings_total": 0,
            "key": "OTS16",
        }
    assert _runs() == []


def test_the_sqlite_file_alone_holds_the_import_once_the_command_ends(tmp_path):
    """The console script leaves no write-ahead log behind: a user who copies ``events.db`` (a backup, a
    hand-over) copies the imported event, not an empty schema."""
    target = tmp_path / "events.db"
    done = _cli("import", str(sample("OTS16")), "--database-url", f"sqlite:///{target}")
    assert done.returncode == 0, done.stderr[-2000:]
    assert not (tmp_path / "events.db-wal").exists() or (tmp_path / "events.db-wal").stat().st_size == 0
    copy = tmp_path / "copy.db"
    copy.write_bytes(target.read_bytes())  # the file only, as cp would
    with zipfile.ZipFile(sample("OTS16")) as archive:
        sessions = json.loads(archive.read("sessions"))
    with sqlite3.connect(copy) as conn:
        assert conn.execute("select count(*) from sessions").fetchone() == (len(sessions),)
