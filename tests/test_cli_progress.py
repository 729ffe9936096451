"""The console script's stderr: one progress line per step by default, Dagster's log with --verbose,
plain --help texts; the last stdout line is the result JSON either way."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from conftest import BROKEN_SAMPLE, REFERENCE_ORDER, sample

BIN = Path(sys.executable).parent
STEPS = ["archive", *REFERENCE_ORDER, "media", "import_result"]
LINE = re.compile(r"^\[\s*(\d+)/(\d+)\] (\S+(?: \S+)?)\s+\d+\.\d s  (.*)$")


def console(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "event-pipeline"), *args], capture_output=True, text=True, timeout=timeout)


def test_import_prints_one_line_per_step(db_url):
    proc = console("import", str(sample("OTS16")), "--database-url", db_url)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1])["state"] == "SUCCESS"
    lines = proc.stderr.strip().splitlines()
    parsed = [LINE.match(line) for line in lines]
    assert all(parsed), lines  # nothing but progress lines: no Dagster DEBUG log
    numbers = [(int(m[1]), int(m[2])) for m in parsed]
    assert numbers == [(i, len(lines)) for i in range(1, len(lines) + 1)]
    names = [m[3] for m in parsed]
    assert names[: len(STEPS)] == STEPS  # the reference import order, step by step
    assert all(name.startswith("check ") for name in names[len(STEPS) :])  # then import_result's checks
    with zipfile.ZipFile(sample("OTS16")) as archive:
        for model in ("microlocations", "sponsors", "speakers", "tracks", "sessions"):
            expected = len(json.loads(archive.read(model)))
            [detail] = [m[4] for m in parsed if m[3] == model]
            assert detail.startswith(f"{model}: {expected} records"), detail


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_progress_lines_bypass_dagsters_capture_of_the_run(db_url, isolated_home):
    """Dagster points stderr into the run's compute log and mirrors it through ``tail -F``, which can drop
    the last lines (dagster-io/dagster#23336): the progress lines are written past that capture, so the
    compute log holds none of them and the terminal gets all 14."""
    proc = console("import", str(sample("OTS16")), "--database-url", db_url)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stderr.strip().splitlines()
    assert [LINE.match(line)[1] for line in lines if LINE.match(line)] == [str(i) for i in range(1, 15)]
    captured = list(isolated_home.glob("storage/*/compute_logs/*.err"))
    assert captured  # the run's capture happened
    assert not any(LINE.match(line) for path in captured for line in path.read_text().splitlines())


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_failed_step_says_why_and_nothing_else(db_url):
    proc = console("import", str(sample(BROKEN_SAMPLE)), "--database-url", db_url)
    assert proc.returncode == 1
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, lines  # the steps that never ran add nothing
    match = LINE.match(lines[0])
    assert match and match[3] == "archive" and match[4].startswith("FAILED: session_types: invalid JSON")
    assert result["errors"][0]["file"] == "session_types"


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_verbose_shows_dagsters_log(db_url):
    proc = console("import", str(sample("OTS16")), "--database-url", db_url, "--verbose")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1])["state"] == "SUCCESS"
    assert "STEP_SUCCESS" in proc.stderr and "DEBUG" in proc.stderr
    assert not any(LINE.match(line) for line in proc.stderr.splitlines())


def test_help_is_plain_text():
    for args in (["--help"], ["import", "--help"], ["validate", "--help"], ["db", "--help"]):
        proc = console(*args, timeout=60)
        assert proc.returncode == 0, proc.stderr
        assert "usage: event-pipeline" in proc.stdout
        assert not re.search(r"``|:func:|:mod:|:class:", proc.stdout), proc.stdout
    assert "--verbose" in console("import", "--help", timeout=60).stdout
