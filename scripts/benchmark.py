"""Benchmark the importer against the raw limit and the reference server's way (issue 6).

On the same synthetic archives (``scripts/generate_archive.py``) and the same
database server, side by side, for each size N and each backend:

1. ``project``: ``event-pipeline import`` as a subprocess into a fresh
   database (interpreter and Dagster start-up included); wall time, peak RSS
   of that process (``os.wait4``), and the Dagster run's own duration and
   per-step times (from the run storage of a throwaway ``DAGSTER_HOME``).
2. ``raw``: the same rows, parsed from the archive's JSON here, written in
   one transaction with ``COPY`` (PostgreSQL, psycopg 3 ``cursor.copy``) or
   ``executemany`` (SQLite), into tables of the project's exact DDL
   (``raw``) and into bare tables with the same columns and no keys,
   indexes or constraints (``raw_bare``). Parse time is included and also
   reported on its own.
3. ``row_by_row``: the reference server's way (open-event-server,
   ``import_helpers.create_service_from_json``): one INSERT and one COMMIT
   per record, sessions together with their speaker links. Measured in full
   up to ``--rbr-limit`` sessions; above that it is measured on the
   ``--rbr-limit`` archive and extrapolated linearly by row count (marked
   ``extrapolated`` in the results).
4. ``reimport_unchanged`` (same archive, same key) and ``reimport_edited``
   (the copy with 1% of the sessions edited, same ids, ``--key`` the same)
   into the database the fresh import of that repetition just filled.

Plus ``startup``: fresh import and unchanged re-import of a 10-session
archive, the fixed cost of a CLI run (Python, Dagster, instance, run).

Results: ``benchmarks/results.json`` (every measurement and the medians) and
``benchmarks/benchmark.png`` (time against N, log-log); a Markdown summary is
printed. ``--profile N`` also profiles one in-process import of N sessions on
PostgreSQL with pyinstrument (``benchmarks/profile-<N>.txt``).

    .venv/bin/python scripts/benchmark.py --sizes 1000,10000,100000 --repeat 3 --repeat-large 1 --profile 100000
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import os
import platform
import re
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

import generate_archive  # noqa: E402

OUT_DIR = ROOT / "benchmarks"
# What runs the importer: the installed command on the working tree, or (``--ref``)
# ``python -m event_pipeline.cli`` on a snapshot of a git revision put first on PYTHONPATH.
CLI_COMMAND = [str(ROOT / ".venv" / "bin" / "event-pipeline")]
SOURCE = ROOT
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"
TINY = 10  # sessions in the start-up baseline archive
LARGE = 50_000  # sizes from here on use --repeat-large

# Source keys the raw loaders map like the project's catalog does (folded key -> column).
ALIASES = {
    "events": {"type": "event_type", "logo": "logo_url"},
    "sponsors": {"type": "sponsor_type", "logo": "logo_url"},
    "speakers": {"photo": "photo_url", "featured": "is_featured"},
}
# Archive file -> table, in the reference server's import order.
FILES = (
    ("social_links", "social_links"),
    ("forms", "custom_forms"),
    ("microlocations", "microlocations"),
    ("sponsors", "sponsors"),
    ("speakers", "speakers"),
    ("tracks", "tracks"),
    ("session_types", "session_types"),
    ("sessions", "sessions"),
)
FK_FIELDS = {"track": ("track_id", "tracks"), "microlocation": ("microlocation_id", "microlocations")}
FK_FIELDS_ST = {"session_type": ("session_type_id", "session_types")}


# --------------------------------------------------------------------------- helpers


def log(message: str) -> None:
    print(f"[{datetime.now():%H:%M:%S}] {message}", file=sys.stderr, flush=True)


def median(values: Iterable[float | None]) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def fold(key: str) -> str:
    return key.strip().replace("-", "_").replace(" ", "_").lower()


def pg_url(db: str, driver: str = "postgresql") -> str:
    return f"{driver}://postgres@127.0.0.1:5432/{db}"


def pg_admin(sql: str) -> None:
    import psycopg

    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(sql)


class Database:
    """A throwaway database: a PostgreSQL database or a SQLite file."""

    def __init__(self, backend: str, name: str, workdir: Path):
        self.backend, self.name = backend, name
        self.path = workdir / f"{name}.db"

    def __enter__(self) -> Database:
        if self.backend == "postgresql":
            pg_admin(f'DROP DATABASE IF EXISTS "{self.name}"')
            pg_admin(f'CREATE DATABASE "{self.name}"')
        else:
            self._remove_files()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.backend == "postgresql":
            pg_admin(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
        else:
            self._remove_files()

    def _remove_files(self) -> None:
        for suffix in ("", "-wal", "-shm", "-journal"):
            Path(f"{self.path}{suffix}").unlink(missing_ok=True)

    @property
    def url(self) -> str:
        return pg_url(self.name) if self.backend == "postgresql" else f"sqlite:///{self.path}"


# --------------------------------------------------------------------------- archives


def archive_paths(n: int, workdir: Path, seed: int) -> tuple[Path, Path]:
    """The archive of n sessions and its 1%-edited copy, generated once and cached by content of the generator."""
    digest = hashlib.sha1(Path(generate_archive.__file__).read_bytes()).hexdigest()[:8]
    base = workdir / "archives" / f"synthetic-{n}-s{seed}-{digest}"
    plain, edited = base.with_suffix(".zip"), Path(f"{base}-edited.zip")
    if not (plain.exists() and edited.exists()):
        log(f"generating archive of {n} sessions")
        generate_archive.generate(n, plain, seed=seed, edited_path=edited)
    return plain, edited


def read_documents(path: Path) -> dict[str, Any]:
    with zipfile.ZipFile(path) as zf:
        return {
            name.removesuffix(".json"): json.loads(zf.read(name))
            for name in zf.namelist()
            if "/" not in name and not name.endswith("/")
        }


# --------------------------------------------------------------------------- rows, as the raw loaders see them


def table_columns() -> dict[str, list[str]]:
    from event_pipeline.model.schema import metadata

    return {name: [c.name for c in table.columns] for name, table in metadata.tables.items()}


def build_rows(docs: dict[str, Any], columns: dict[str, list[str]]) -> dict[str, list[tuple]]:
    """Every row the import writes, as tuples in table column order; ids are the source ids.

    The minimal work any importer does: fold keys, map to columns, keep the
    rest as JSON in ``extra``, resolve references, collect links. No
    validation, no content hash (an empty string), timestamps as text.
    """
    now = datetime.now(UTC)
    out: dict[str, list[tuple]] = {}

    def row(table: str, record: dict, fixed: dict[str, Any], skip: tuple[str, ...] = ()) -> tuple:
        cols = columns[table]
        aliases = ALIASES.get(table, {})
        values: dict[str, Any] = dict(fixed)
        extra: dict[str, Any] = {}
        for key, value in record.items():
            if key == "id" or key in skip:
                continue
            name = aliases.get(fold(key), fold(key))
            if name in cols and name not in values:
                values[name] = json.dumps(value) if isinstance(value, dict | list) else value
            else:
                extra[key] = value
        source = str(record["id"])
        values.update(source_id=source, source_key=source, content_hash="", extra=json.dumps(extra))
        values.update(created_at=now, updated_at=now)
        return tuple(values.get(c) for c in cols)

    event = dict(docs["event"])
    social = event.pop("social-links", [])
    out["events"] = [
        row(
            "events",
            event,
            {"id": 1, "import_key": "raw", "identifier": "raw00001", "revision": 1, "archive_sha256": ""},
        )
    ]
    links: set[tuple[int, int]] = set()
    for file, table in FILES:
        records = social if file == "social_links" else docs.get(file, [])
        rows = []
        for record in records:
            fixed: dict[str, Any] = {"id": int(record["id"]), "event_id": 1}
            skip: tuple[str, ...] = ()
            if table == "sessions":
                for field, (column, _target) in {**FK_FIELDS, **FK_FIELDS_ST}.items():
                    ref = record.get(field.replace("_", "-"), record.get(field))
                    fixed[column] = int(ref["id"]) if isinstance(ref, dict) and ref.get("id") is not None else None
                for speaker in record.get("speakers") or []:
                    links.add((int(record["id"]), int(speaker["id"])))
                skip = ("track", "microlocation", "session-type", "session_type", "speakers")
            elif table == "speakers":
                for session in record.get("sessions") or []:
                    links.add((int(session["id"]), int(record["id"])))
                skip = ("sessions",)
            rows.append(row(table, record, fixed, skip))
        out[table] = rows
    out["session_speakers"] = sorted(links)
    return out


def row_count(rows: dict[str, list[tuple]]) -> int:
    return sum(len(r) for r in rows.values())


TABLE_ORDER = (
    "events",
    "social_links",
    "custom_forms",
    "microlocations",
    "sponsors",
    "speakers",
    "tracks",
    "session_types",
    "sessions",
    "session_speakers",
)


def create_tables(backend: str, url: str, bare: bool) -> None:
    """The project's exact DDL, or the same columns with no keys, indexes or constraints."""
    import sqlalchemy as sa

    from event_pipeline.db import normalise_url
    from event_pipeline.model.schema import metadata

    engine = sa.create_engine(normalise_url(url))
    with engine.begin() as conn:
        if not bare:
            metadata.create_all(conn, tables=[metadata.tables[t] for t in TABLE_ORDER])
        else:
            for name in TABLE_ORDER:
                table = metadata.tables[name]
                cols = ", ".join(f"{c.name} {c.type.compile(dialect=engine.dialect)}" for c in table.columns)
                conn.exec_driver_sql(f"CREATE TABLE {name} ({cols})")
    engine.dispose()


def load_raw(backend: str, db: Database, archive: Path, columns: dict[str, list[str]], bare: bool) -> dict[str, Any]:
    """Parse the archive and write every row in one transaction: COPY or executemany."""
    create_tables(backend, db.url, bare)
    cpu = time.process_time()
    start = time.perf_counter()
    gc.disable()  # as the importer does while parsing: the raw limit should be the best a loader can do
    try:
        rows = build_rows(read_documents(archive), columns)
    finally:
        gc.enable()
    parsed = time.perf_counter()
    if backend == "postgresql":
        import psycopg

        with psycopg.connect(pg_url(db.name)) as conn, conn.cursor() as cur:
            for table in TABLE_ORDER:
                cols = ", ".join(columns[table])
                with cur.copy(f"COPY {table} ({cols}) FROM STDIN") as copy:
                    for r in rows[table]:
                        copy.write_row(r)
            conn.commit()
    else:
        conn = sqlite3.connect(db.path, isolation_level=None)
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("BEGIN IMMEDIATE")
        for table in TABLE_ORDER:
            marks = ", ".join("?" * len(columns[table]))
            conn.executemany(f"INSERT INTO {table} ({', '.join(columns[table])}) VALUES ({marks})", rows[table])
        conn.execute("COMMIT")
        conn.close()
    end = time.perf_counter()
    return {
        "seconds": end - start,
        "parse_seconds": parsed - start,
        "cpu_seconds": time.process_time() - cpu,
        "rows": row_count(rows),
    }


def load_row_by_row(backend: str, db: Database, archive: Path, columns: dict[str, list[str]]) -> dict[str, Any]:
    """The reference server's way: per record one INSERT and one COMMIT, ids mapped as it goes.

    Sessions are committed with their speaker links (the reference sets
    ``session.speakers`` before its commit). Database ids are assigned
    here from counters (the project's tables have no id default); the
    reference's old-id -> new-id maps are kept the same way.
    """
    create_tables(backend, db.url, bare=False)
    cpu = time.process_time()
    start = time.perf_counter()
    rows = build_rows(read_documents(archive), columns)
    links_by_session: dict[int, list[int]] = {}
    for session_id, speaker_id in rows["session_speakers"]:
        links_by_session.setdefault(session_id, []).append(speaker_id)
    if backend == "postgresql":
        import psycopg

        conn = psycopg.connect(pg_url(db.name))
        mark = "%s"
    else:
        conn = sqlite3.connect(db.path, isolation_level=None)
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA journal_mode=WAL")
        mark = "?"
    cur = conn.cursor()

    def begin() -> None:
        if backend == "sqlite":
            cur.execute("BEGIN")

    def commit() -> None:
        if backend == "sqlite":
            cur.execute("COMMIT")
        else:
            conn.commit()

    link_sql = f"INSERT INTO session_speakers (session_id, speaker_id) VALUES ({mark}, {mark})"
    id_maps: dict[str, dict[int, int]] = {}
    for table in TABLE_ORDER[:-1]:
        cols = columns[table]
        sql = f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join([mark] * len(cols))})"
        id_index = cols.index("id")
        fk_index = {c: cols.index(c) for c in ("track_id", "microlocation_id", "session_type_id") if c in cols}
        id_map = id_maps.setdefault(table, {})
        next_id = 1
        for r in sorted(rows[table], key=lambda r: r[id_index]):  # the reference sorts by id too
            values = list(r)
            old_id, values[id_index] = values[id_index], next_id
            for column, index in fk_index.items():
                target = {"track_id": "tracks", "microlocation_id": "microlocations"}.get(column, "session_types")
                if values[index] is not None:
                    values[index] = id_maps[target][values[index]]
            begin()
            cur.execute(sql, values)
            if table == "sessions":
                for speaker in links_by_session.get(old_id, []):
                    cur.execute(link_sql, (next_id, id_maps["speakers"][speaker]))
            commit()
            id_map[old_id] = next_id
            next_id += 1
    conn.close()
    return {"seconds": time.perf_counter() - start, "cpu_seconds": time.process_time() - cpu, "rows": row_count(rows)}


# --------------------------------------------------------------------------- the project, as a subprocess


def use_ref(ref: str, workdir: Path) -> str:
    """Benchmark a git revision instead of the working tree (which others may be editing)."""
    global SOURCE, CLI_COMMAND
    sha = subprocess.run(["git", "rev-parse", ref], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
    source = workdir / f"src-{sha[:12]}"
    if not (source / "event_pipeline").is_dir():
        source.mkdir(parents=True, exist_ok=True)
        tar = subprocess.run(
            ["git", "archive", sha, "event_pipeline", "dagster.yaml", "pyproject.toml"],
            cwd=ROOT,
            capture_output=True,
            check=True,
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(source)], input=tar, check=True)
    SOURCE = source
    CLI_COMMAND = [sys.executable, "-m", "event_pipeline.cli"]
    sys.path.insert(0, str(source))
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(source), os.environ.get("PYTHONPATH")]))
    return sha


# Started by a small launcher, not by this (large) process: Linux carries the peak RSS of
# the memory a process had before exec into its ru_maxrss, and a child forked from this
# process would report this process's peak. The launcher is small; its child's is its own.
LAUNCHER = """
import json, os, sys, time
out, cmd = sys.argv[1], sys.argv[2:]
start = time.perf_counter()
pid = os.posix_spawn(cmd[0], cmd, os.environ)
_, status, usage = os.wait4(pid, 0)
seconds = time.perf_counter() - start
with open(out, "w") as fh:
    json.dump({"seconds": seconds, "cpu_seconds": usage.ru_utime + usage.ru_stime,
               "rss_kib": usage.ru_maxrss, "exit": os.waitstatus_to_exitcode(status)}, fh)
"""


def run_cli(args: list[str], env: dict[str, str]) -> dict[str, Any]:
    """Run the CLI; wall time, CPU time and peak RSS of that very process (wait4), its JSON line."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, tempfile.NamedTemporaryFile() as usage:
        command = [sys.executable, "-c", LAUNCHER, usage.name, *CLI_COMMAND, *args]
        subprocess.run(command, stdout=out, stderr=err, env=env, cwd=SOURCE, check=True)
        measured = json.loads(Path(usage.name).read_text())
        out.seek(0)
        err.seek(0)
        lines = out.read().decode().strip().splitlines()
        stderr = err.read().decode(errors="replace")
    try:
        payload = json.loads(lines[-1]) if lines else {}
    except json.JSONDecodeError:
        payload = {"state": "UNPARSEABLE", "stdout": lines[-1][:500]}
    if payload.get("state") != "SUCCESS":
        log(f"  import failed (exit {measured['exit']}): {json.dumps(payload)[:400]} / {stderr[-400:]}")
    return {**measured, "payload": payload}


def run_stats(key: str) -> dict[str, Any]:
    """The Dagster run's own duration and its steps', from this benchmark's DAGSTER_HOME."""
    import dagster as dg

    instance = dg.DagsterInstance.get()
    try:
        runs = instance.get_runs(filters=dg.RunsFilter(tags={"dagster/partition": key}), limit=1)
        if not runs:
            return {}
        stats = instance.get_run_stats(runs[0].run_id)
        steps = {s.step_key: round(s.end_time - s.start_time, 3) for s in instance.get_run_step_stats(runs[0].run_id)}
        return {"run_seconds": stats.end_time - stats.start_time, "steps": steps}
    finally:
        instance.dispose()


def project_import(db: Database, archive: Path, key: str, env: dict[str, str]) -> dict[str, Any]:
    result = run_cli(["import", str(archive), "--key", key, "--database-url", db.url], env)
    payload = result.pop("payload")
    result["state"] = payload.get("state")
    result["unchanged_archive"] = payload.get("unchanged_archive")
    diff = payload.get("diff") or {}
    result["diff"] = {k: diff.get(k) for k in ("created", "updated", "deleted", "unchanged")}
    result["counts"] = payload.get("counts")
    result["warnings"] = len(payload.get("warnings") or [])
    if payload.get("state") != "SUCCESS":
        result["error"] = payload.get("error") or str(payload)[:500]
    result.update(run_stats(key))
    return result


# --------------------------------------------------------------------------- the benchmark


def measure(args: argparse.Namespace) -> dict[str, Any]:
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    home = Path(tempfile.mkdtemp(prefix="dagster-home-", dir=workdir))
    shutil.copy(SOURCE / "dagster.yaml", home / "dagster.yaml")
    os.environ["DAGSTER_HOME"] = str(home)
    env = {**os.environ, "DAGSTER_HOME": str(home)}
    env.pop("EVENT_PIPELINE_DATABASE_URL", None)
    columns = table_columns()
    sizes = sorted(args.sizes)
    archives = {n: archive_paths(n, workdir, args.seed) for n in sorted({TINY, *sizes, args.rbr_limit})}
    info: dict[int, dict[str, Any]] = {}
    for n, (plain, _edited) in archives.items():
        rows = build_rows(read_documents(plain), columns)
        info[n] = {
            "sessions": len(rows["sessions"]),
            "speakers": len(rows["speakers"]),
            "session_speakers": len(rows["session_speakers"]),
            "rows": row_count(rows),
            "zip_bytes": plain.stat().st_size,
        }
        del rows
    results: list[dict[str, Any]] = []
    tag = os.getpid()

    def record(backend: str, n: int, approach: str, rep: int, outcome: dict[str, Any]) -> None:
        outcome = {"backend": backend, "n": n, "approach": approach, "repeat": rep, **outcome}
        outcome["load_average_1m"] = os.getloadavg()[0]  # other work on the machine skews wall times
        results.append(outcome)
        rss = f", {outcome['rss_kib'] / 1024:.0f} MiB" if outcome.get("rss_kib") else ""
        run = f" (run {outcome['run_seconds']:.2f} s)" if outcome.get("run_seconds") else ""
        log(f"  {backend} N={n} {approach} #{rep}: {outcome['seconds']:.2f} s{run}{rss}")

    try:
        for backend in args.backends:
            log(f"== {backend}")
            # Warm-up (the first run of a home creates its storage; also warms the page cache), then the baseline.
            tiny, _ = archives[TINY]
            with Database(backend, f"bench_{tag}_warmup", workdir) as db:
                project_import(db, tiny, "warmup", env)
            for rep in range(args.repeat):
                with Database(backend, f"bench_{tag}_tiny", workdir) as db:
                    key = f"tiny-{backend}-{rep}"
                    record(backend, TINY, "startup_fresh", rep, project_import(db, tiny, key, env))
                    record(backend, TINY, "startup_unchanged", rep, project_import(db, tiny, key, env))
            for n in sizes:
                plain, edited = archives[n]
                repeats = args.repeat_large if n >= LARGE and args.repeat_large else args.repeat
                for rep in range(repeats):
                    with Database(backend, f"bench_{tag}_p", workdir) as db:
                        key = f"bench-{backend}-{n}-{rep}"
                        record(backend, n, "project", rep, project_import(db, plain, key, env))
                        record(backend, n, "reimport_unchanged", rep, project_import(db, plain, key, env))
                        record(backend, n, "reimport_edited", rep, project_import(db, edited, key, env))
                    with Database(backend, f"bench_{tag}_raw", workdir) as db:
                        record(backend, n, "raw", rep, load_raw(backend, db, plain, columns, bare=False))
                    with Database(backend, f"bench_{tag}_bare", workdir) as db:
                        record(backend, n, "raw_bare", rep, load_raw(backend, db, plain, columns, bare=True))
                    if n <= args.rbr_limit:
                        with Database(backend, f"bench_{tag}_rbr", workdir) as db:
                            record(backend, n, "row_by_row", rep, load_row_by_row(backend, db, plain, columns))
            if any(n > args.rbr_limit for n in sizes):
                measured = [r for r in results if r["backend"] == backend and r["approach"] == "row_by_row"]
                base = [r["seconds"] for r in measured if r["n"] == args.rbr_limit]
                if not base:
                    small, _ = archives[args.rbr_limit]
                    for rep in range(args.repeat):
                        with Database(backend, f"bench_{tag}_rbr", workdir) as db:
                            outcome = load_row_by_row(backend, db, small, columns)
                        record(backend, args.rbr_limit, "row_by_row_sample", rep, outcome)
                        base.append(outcome["seconds"])
                per_row = statistics.median(base) / info[args.rbr_limit]["rows"]
                for n in (n for n in sizes if n > args.rbr_limit):
                    outcome = {
                        "seconds": per_row * info[n]["rows"],
                        "rows": info[n]["rows"],
                        "extrapolated": True,
                        "measured_on": args.rbr_limit,
                    }
                    record(backend, n, "row_by_row", 0, outcome)
    finally:
        shutil.rmtree(home, ignore_errors=True)
    return {"archives": info, "results": results}


APPROACHES = (
    "project",
    "raw",
    "raw_bare",
    "row_by_row",
    "reimport_unchanged",
    "reimport_edited",
    "startup_fresh",
    "startup_unchanged",
)


def summarise(data: dict[str, Any]) -> dict[str, Any]:
    """Medians per backend, size and approach, and the ratios."""
    summary: dict[str, Any] = {}
    for r in data["results"]:
        if r.get("state", "SUCCESS") != "SUCCESS":
            continue  # failed imports are kept in results, not in the medians
        summary.setdefault(r["backend"], {}).setdefault(str(r["n"]), {}).setdefault(r["approach"], []).append(r)
    out: dict[str, Any] = {}
    for backend, sizes in summary.items():
        out[backend] = {}
        for n, approaches in sizes.items():
            cell: dict[str, Any] = {}
            for approach, runs in approaches.items():
                cell[approach] = {
                    "seconds": median(r["seconds"] for r in runs),
                    "run_seconds": median(r.get("run_seconds") for r in runs),
                    "cpu_seconds": median(r.get("cpu_seconds") for r in runs),
                    "load_average_1m": median(r.get("load_average_1m") for r in runs),
                    "parse_seconds": median(r.get("parse_seconds") for r in runs),
                    "rss_mib": (median(r.get("rss_kib") for r in runs) or 0) / 1024 or None,
                    "repeats": len(runs),
                    "extrapolated": any(r.get("extrapolated") for r in runs),
                    "steps": {
                        step: median(r.get("steps", {}).get(step) for r in runs)
                        for step in (runs[0].get("steps") or {})
                    },
                }
            rows = data["archives"][int(n)]["rows"]
            for approach in cell.values():
                approach["rows_per_second"] = rows / approach["seconds"] if approach["seconds"] else None
            project, raw = cell.get("project", {}).get("seconds"), cell.get("raw", {}).get("seconds")
            bare, rbr = cell.get("raw_bare", {}).get("seconds"), cell.get("row_by_row", {}).get("seconds")
            cell["ratios"] = {
                "project_over_raw": project / raw if project and raw else None,
                "project_over_raw_bare": project / bare if project and bare else None,
                "project_run_over_raw": (cell["project"]["run_seconds"] / raw)
                if project and raw and cell["project"]["run_seconds"]
                else None,
                "row_by_row_over_project": rbr / project if rbr and project else None,
                "edited_over_project": (cell["reimport_edited"]["seconds"] / project)
                if project and "reimport_edited" in cell
                else None,
            }
            out[backend][n] = cell
    return out


def markdown(data: dict[str, Any]) -> str:
    lines = []
    for backend, sizes in data["summary"].items():
        lines += [
            f"\n### {backend}\n",
            "| N sessions | rows | project s | run s | CPU s | raw s (parse) | bare s | row-by-row s | project ÷ raw "
            "| project ÷ bare | row-by-row ÷ project | project rows/s | raw rows/s | peak RSS MiB "
            "| unchanged s (run s) | 1% edited s (run s) |",
            "|" + "---|" * 16,
        ]
        startup = sizes.get(str(TINY), {})
        for n in sorted(sizes, key=int):
            if int(n) == TINY:
                continue
            c = sizes[n]
            rows = data["archives"][n]["rows"]

            def s(name: str, field: str = "seconds", fmt: str = "{:.2f}", c: dict = c) -> str:
                value = c.get(name, {}).get(field)
                return fmt.format(value) if value is not None else "–"

            rbr = s("row_by_row") + (" (extrapolated)" if c.get("row_by_row", {}).get("extrapolated") else "")
            ratios = c["ratios"]

            def ratio(key: str, ratios: dict = ratios) -> str:
                return f"{ratios[key]:.1f}×" if ratios.get(key) else "–"

            lines.append(
                f"| {int(n):,} | {rows:,} | {s('project')} | {s('project', 'run_seconds')} "
                f"| {s('project', 'cpu_seconds')} "
                f"| {s('raw')} ({s('raw', 'parse_seconds')}) | {s('raw_bare')} | {rbr} | {ratio('project_over_raw')} "
                f"| {ratio('project_over_raw_bare')} | {ratio('row_by_row_over_project')} "
                f"| {s('project', 'rows_per_second', '{:,.0f}')} | {s('raw', 'rows_per_second', '{:,.0f}')} "
                f"| {s('project', 'rss_mib', '{:.0f}')} | {s('reimport_unchanged')} "
                f"({s('reimport_unchanged', 'run_seconds')}) | {s('reimport_edited')} "
                f"({s('reimport_edited', 'run_seconds')}) |"
            )
        if startup.get("startup_fresh") and startup.get("startup_unchanged"):
            lines.append(
                f"\nStart-up baseline ({TINY} sessions): fresh import "
                f"{startup['startup_fresh']['seconds']:.2f} s (run {startup['startup_fresh']['run_seconds']:.2f} s), "
                f"unchanged re-import {startup['startup_unchanged']['seconds']:.2f} s "
                f"(run {startup['startup_unchanged']['run_seconds']:.2f} s), "
                f"peak RSS {startup['startup_fresh']['rss_mib']:.0f} MiB."
            )
    failed = [r for r in data["results"] if r.get("state", "SUCCESS") != "SUCCESS"]
    for r in failed:
        lines.append(f"\nFAILED: {r['backend']} N={r['n']} {r['approach']} #{r['repeat']}: {r.get('error')}")
    return "\n".join(lines)


def plot(data: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    backends = list(data["summary"])
    fig, axes = plt.subplots(1, len(backends), figsize=(6.5 * len(backends), 5), squeeze=False)
    styles = {
        "project": ("event-pipeline import (end to end)", "o-", "C0"),
        "reimport_edited": ("re-import, 1% edited", "s--", "C4"),
        "reimport_unchanged": ("re-import, unchanged", "^:", "C5"),
        "raw": ("raw: COPY / executemany, one transaction", "D-", "C2"),
        "row_by_row": ("row by row: INSERT + COMMIT per row", "x-", "C3"),
    }
    for ax, backend in zip(axes[0], backends, strict=True):
        sizes = sorted(int(n) for n in data["summary"][backend] if int(n) != TINY)
        for approach, (label, style, color) in styles.items():
            points = [(n, data["summary"][backend][str(n)].get(approach)) for n in sizes]
            points = [(n, c) for n, c in points if c and c["seconds"]]
            if not points:
                continue
            xs, ys = [n for n, _ in points], [c["seconds"] for _, c in points]
            ax.plot(xs, ys, style, color=color, label=label)
            for n, c in points:
                if c.get("extrapolated"):
                    ax.plot([n], [c["seconds"]], "o", mfc="none", mec=color, ms=12)
        startup = data["summary"][backend].get(str(TINY), {}).get("startup_fresh", {}).get("seconds")
        if startup:
            ax.axhline(startup, color="grey", ls="--", lw=1, label=f"CLI start-up: import of {TINY} sessions")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("sessions in the archive (N)")
        ax.set_ylabel("seconds (median)")
        ax.set_title(f"{backend}")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8, title="circled: extrapolated", title_fontsize=7)
    fig.suptitle("Importing a synthetic Open Event archive: time against size")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# --------------------------------------------------------------------------- profile


def prune_profile(text: str, threshold: float = 0.5) -> str:
    """Keep the frames that took at least ``threshold`` seconds (the whole tree is megabytes)."""
    kept = []
    for line in text.splitlines():
        match = re.search(r"(\d+\.\d{3}) \S", line)
        if match is None or float(match.group(1)) >= threshold:
            kept.append(line)
    return "\n".join(kept) + "\n"


def profile(n: int, workdir: Path, seed: int, out: Path) -> None:
    """One in-process import of N sessions into a fresh PostgreSQL database, under pyinstrument.

    Writes ``out`` (library frames folded) and ``<out>-all.txt`` (every frame of 0.5 s or more).
    """
    plain, _ = archive_paths(n, workdir, seed)
    home = Path(tempfile.mkdtemp(prefix="dagster-home-", dir=workdir))
    shutil.copy(SOURCE / "dagster.yaml", home / "dagster.yaml")
    name = f"bench_{os.getpid()}_profile"
    with Database("postgresql", name, workdir) as db:
        code = (
            "import sys\n"
            "from pyinstrument import Profiler\n"
            "from event_pipeline import cli\n"
            "profiler = Profiler(interval=0.005)\n"
            "profiler.start()\n"
            f"code = cli.main(['import', {str(plain)!r}, '--key', 'profile', '--database-url', {db.url!r}])\n"
            "profiler.stop()\n"
            f"open({str(out)!r}, 'w').write(profiler.output_text(unicode=False, color=False, show_all=False))\n"
            f"open({str(out.with_name(out.stem + '-all.txt'))!r}, 'w')"
            ".write(profiler.output_text(unicode=False, color=False, show_all=True))\n"
            "sys.exit(code)\n"
        )
        env = {**os.environ, "DAGSTER_HOME": str(home)}
        log(f"profiling one import of {n} sessions")
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], env=env, check=True, stdout=subprocess.DEVNULL, cwd=SOURCE)
        log(f"  profiled import took {time.perf_counter() - start:.1f} s (with profiler overhead)")
    full = out.with_name(out.stem + "-all.txt")
    full.write_text(prune_profile(full.read_text()))
    shutil.rmtree(home, ignore_errors=True)


# --------------------------------------------------------------------------- main


def environment() -> dict[str, Any]:
    import psycopg

    with psycopg.connect(PG_ADMIN) as conn:
        pg = {
            "version": conn.execute("SHOW server_version").fetchone()[0],
            **{k: conn.execute(f"SHOW {k}").fetchone()[0] for k in ("fsync", "synchronous_commit", "shared_buffers")},
        }
    git = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--short"], cwd=ROOT, capture_output=True, text=True).stdout.splitlines()
    import dagster

    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "git_head": git,
        "git_dirty": dirty,
        "python": platform.python_version(),
        "dagster": dagster.__version__,
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "postgresql": pg,
        "sqlite": sqlite3.sqlite_version,
    }


def main(argv: list[str] | None = None) -> int:
    # A plain kill ends the run through the finally blocks: throwaway databases are dropped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="1000,10000,100000", help="comma-separated session counts")
    parser.add_argument("--repeat", type=int, default=3, help="repetitions per size (the median is reported)")
    parser.add_argument("--repeat-large", type=int, default=0, help=f"repetitions for sizes >= {LARGE} (0: --repeat)")
    parser.add_argument("--backends", default="postgresql,sqlite")
    parser.add_argument(
        "--rbr-limit", type=int, default=10_000, help="row-by-row measured up to this N, extrapolated above"
    )
    parser.add_argument("--profile", type=int, default=0, help="also profile one import of this many sessions")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workdir", default=str(Path(tempfile.gettempdir()) / "event-pipeline-bench"))
    parser.add_argument("--out", default=str(OUT_DIR))
    parser.add_argument("--ref", help="benchmark this git revision (a snapshot of it) instead of the working tree")
    parser.add_argument("--replot", metavar="RESULTS", help="only redraw the plot and tables from a results.json")
    args = parser.parse_args(argv)
    if args.replot:
        data = json.loads(Path(args.replot).read_text())
        plot(data, Path(args.replot).with_name("benchmark.png"))
        print(markdown(data))
        return 0
    args.sizes = [int(s) for s in args.sizes.split(",") if s]
    args.backends = [b for b in args.backends.split(",") if b]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    data: dict[str, Any] = {"environment": environment(), "arguments": vars(args)}
    if args.ref:
        data["environment"]["benchmarked_revision"] = use_ref(args.ref, Path(args.workdir))
    else:
        data["environment"]["benchmarked_revision"] = "working tree"
    if not args.sizes:  # --sizes '' --profile N: only the profile
        if args.profile:
            profile(args.profile, Path(args.workdir), args.seed, out / f"profile-{args.profile}.txt")
        return 0
    data.update(measure(args))
    data["archives"] = {str(n): v for n, v in data["archives"].items()}
    data["summary"] = summarise({**data, "archives": {int(n): v for n, v in data["archives"].items()}})
    data["benchmark_seconds"] = time.perf_counter() - started
    (out / "results.json").write_text(json.dumps(data, indent=2, default=str) + "\n")
    plot(data, out / "benchmark.png")
    if args.profile:
        profile(args.profile, Path(args.workdir), args.seed, out / f"profile-{args.profile}.txt")
    print(markdown(data))
    log(f"done in {time.perf_counter() - started:.0f} s; wrote {out / 'results.json'} and {out / 'benchmark.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
