"""Benchmark the importer: the figures of issue 14, and the older comparisons of issue 6.

On the same synthetic archives (``scripts/generate_archive.py``: kebab-case,
data files without ``.json``, inline references) and the same database
server, side by side, for each size N and each backend (PostgreSQL by
default), all in one run:

**The figures of issue 14** (the headline table, ``headline`` in the results):

1. ``floor``: the least any importer has to do. Open the zip, inflate and
   parse every JSON data member with ``orjson.loads`` (``parse_seconds``),
   then write the same rows the raw loader below builds in one transaction,
   with psycopg 3 ``cursor.copy`` (``COPY ... FROM STDIN``), into *plain*
   tables: the project's columns with no keys, indexes or constraints
   (``copy_seconds``; SQLite: ``executemany``). ``seconds`` is their sum.
   Building the rows from the parsed documents is **not** in the floor: it
   is timed on its own (``build_seconds``), as is the connection (opened
   before the COPY clock starts; the tables are created before it too). The
   garbage collector is off from the parse to the commit, as in the
   importer.
2. The **fixed cost**: a 10-session archive through the CLI into a fresh
   database (``startup_fresh``), interleaved with ``python -c "import
   dagster"`` (``import_dagster``) on the same interpreter, each through
   the same launcher; the ratio of the medians is the figure. Where the rest
   goes: the import job's definitions imported as the CLI imports them
   (``import_definitions``: collector off, no interpreter teardown), and the
   Dagster run's own time (run storage). Beside them, what the least
   Dagster-run import costs (``DAGSTER_CHAIN``): one asset writing one row
   (``dagster_one_step``), and a chain of as many empty steps as the import
   job has (``dagster_chain``).
3. ``project``: ``python -m event_pipeline.cli import`` as a subprocess into
   a fresh database: wall time, peak RSS of that very process
   (``os.wait4``), the Dagster run's duration and per-step times (from the
   run storage of a throwaway ``DAGSTER_HOME``). Reported as the time beyond
   the fixed cost (``project - startup_fresh``) and its ratio to the floor.
4. ``reimport_unchanged`` (same archive, same key; against the fixed cost)
   and ``reimport_edited`` (the copy with 1% of the sessions edited, same
   ids and key; against the full import), into the database the fresh import
   of that repetition just filled.

The headline table has a row per figure and a column per size (the
10-session column is the fixed cost), each cell marked against the issue's
goal (``GOAL_*`` below), and a ``holds`` column judged at 100k sessions (the
memory goal at 100k and 1M): beyond the fixed cost <= 2x the floor, fixed
cost <= 2.5x ``import dagster``, peak RSS < 512 MiB (up to 100k) and < 1 GiB
(1M), unchanged re-import "≈ fixed cost", read as <= 1.25x it, and the 1%
edit <= 0.25x the full import. Every figure is a median over the
repetitions, of the same run.

**The older comparisons** (skippable with ``--skip``):

5. ``raw``: the rows parsed here with the stdlib ``json`` (parse time
   included and also reported on its own), written in one transaction with
   ``COPY`` / ``executemany`` into tables of the project's exact DDL; and
   ``raw_bare``, the same into the plain tables (``--skip raw,bare``).
6. ``row_by_row``: the reference server's way (open-event-server,
   ``import_helpers.create_service_from_json``): one INSERT and one COMMIT
   per record, sessions together with their speaker links. Measured in full
   up to ``--rbr-limit`` sessions; above that it is measured on the
   ``--rbr-limit`` archive and extrapolated linearly by row count (marked
   ``extrapolated``) (``--skip rbr``).

Sizes in ``--once`` are measured with one repetition and only the figures of
issue 14 (no raw, bare or row by row): that is how the 1M archive is run.

What is benchmarked: the checkout this script lives in (or ``--ref``'s
snapshot), imported by ``--python``'s interpreter (default: the checkout's
``.venv``, else this interpreter) as ``python -m event_pipeline.cli`` with
the checkout first on ``PYTHONPATH``; so another checkout's venv can be used
without benchmarking that checkout's code. Media go to a throwaway data
folder, never the checkout's ``data/``. A CLI process whose peak RSS passes
``--max-rss-mib`` (default: half the machine's memory) is killed and counted
as failed, so a runaway 1M import cannot take the machine down.

Results: ``benchmarks/results.json`` (every measurement, the medians and the
headline figures with their goals) and ``benchmarks/benchmark.png`` (time
against N, log-log, per backend; peak RSS against N with the 512 MiB and
1 GiB lines); the headline table is printed as Markdown, then the older one.
``--profile N`` also profiles one in-process import of N sessions on
PostgreSQL with pyinstrument (``benchmarks/profile-<N>.txt``). Needs the
``bench`` extra (orjson, pyinstrument) in the benchmarking interpreter.

    .venv/bin/python scripts/benchmark.py --sizes 1000,10000,100000 --once 1000000 --repeat 3
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
sys.path.insert(0, str(ROOT))  # this checkout's event_pipeline, whatever the venv has installed

import generate_archive  # noqa: E402

OUT_DIR = ROOT / "benchmarks"
# What runs the importer: ``python -m event_pipeline.cli`` with SOURCE first on PYTHONPATH, SOURCE
# being this checkout or (``--ref``) a snapshot of a git revision; PYTHON is ``--python``.
SOURCE = ROOT
PYTHON = str(ROOT / ".venv" / "bin" / "python") if (ROOT / ".venv" / "bin" / "python").exists() else sys.executable
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"
TINY = 10  # sessions in the start-up baseline archive: the fixed cost
LARGE = 50_000  # sizes from here on use --repeat-large
ISSUE_N = 100_000  # the archive the goals of issue 14 are stated for (and 1M for the memory goal)
MIB = 1024 * 1024

# Issue 14's goals, as the headline table checks them.
GOAL_BEYOND_OVER_FLOOR = 2.0  # import time beyond the fixed cost <= 2x the floor
GOAL_FIXED_OVER_DAGSTER = 2.5  # fixed cost <= 2.5x `python -c "import dagster"`
GOAL_RSS_MIB = ((ISSUE_N, 512), (1_000_000, 1024))  # peak RSS < 512 MiB up to 100k, < 1 GiB up to 1M
GOAL_UNCHANGED_OVER_FIXED = 1.25  # "≈ fixed cost", read as at most 25% over it
GOAL_EDITED_OVER_FULL = 0.25  # 1% of sessions edited <= 0.25x a full import

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


def data_members(zf: zipfile.ZipFile) -> list[str]:
    """The archive's JSON data files: its top-level members (media live in folders)."""
    return [name for name in zf.namelist() if "/" not in name and not name.endswith("/")]


def read_documents(path: Path) -> dict[str, Any]:
    """Every data member parsed with the stdlib ``json`` (the raw loaders of issue 6)."""
    with zipfile.ZipFile(path) as zf:
        return {name.removesuffix(".json"): json.loads(zf.read(name)) for name in data_members(zf)}


def read_documents_orjson(path: Path) -> dict[str, Any]:
    """Every data member inflated and parsed with ``orjson.loads``: the parse half of the floor."""
    import orjson

    with zipfile.ZipFile(path) as zf:
        return {name.removesuffix(".json"): orjson.loads(zf.read(name)) for name in data_members(zf)}


def archive_info(n: int, plain: Path) -> dict[str, Any]:
    """Record counts of an archive (what ``build_rows`` makes of it), cached beside it.

    Counted one member at a time, so a 1M archive is never held whole.
    """
    import orjson

    cache = Path(f"{plain}.info.json")
    if cache.exists():
        return json.loads(cache.read_text())
    counts: dict[str, int] = {}
    links: set[tuple[int, int]] = set()
    with zipfile.ZipFile(plain) as zf:
        for name in data_members(zf):
            doc = orjson.loads(zf.read(name))
            file = name.removesuffix(".json")
            if file == "event":
                counts["social_links"] = len(doc.get("social-links", doc.get("social_links")) or [])
            elif isinstance(doc, list):
                counts[file] = len(doc)
            if file == "sessions":
                links.update((int(r["id"]), int(s["id"])) for r in doc for s in r.get("speakers") or [])
            elif file == "speakers":
                links.update((int(s["id"]), int(r["id"])) for r in doc for s in r.get("sessions") or [])
            del doc
    tables = 1 + sum(counts.get(file, 0) for file, _ in FILES)
    info = {
        "sessions": counts.get("sessions", 0),
        "speakers": counts.get("speakers", 0),
        "session_speakers": len(links),
        "rows": tables + len(links),
        "zip_bytes": plain.stat().st_size,
    }
    cache.write_text(json.dumps(info) + "\n")
    return info


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


def load_floor(backend: str, db: Database, archive: Path, columns: dict[str, list[str]]) -> dict[str, Any]:
    """Issue 14's floor: parse every data member with orjson, then COPY the rows into plain tables.

    ``seconds`` = ``parse_seconds`` (open the zip, inflate and ``orjson.loads``
    every data member) + ``copy_seconds`` (one transaction: a ``COPY ... FROM
    STDIN`` per table with psycopg 3's ``write_row``, and the commit; SQLite:
    ``executemany``). Not counted: creating the tables and connecting (before
    the COPY clock) and building the rows from the documents (``build_seconds``,
    reported on its own). GC off throughout, as in the importer.
    """
    create_tables(backend, db.url, bare=True)
    gc.collect()
    gc.disable()
    try:
        cpu = time.process_time()
        start = time.perf_counter()
        docs = read_documents_orjson(archive)
        parsed = time.perf_counter()
        parse_cpu = time.process_time() - cpu
        rows = build_rows(docs, columns)
        built = time.perf_counter()
        del docs
        if backend == "postgresql":
            import psycopg

            with psycopg.connect(pg_url(db.name)) as conn:
                cpu = time.process_time()
                copy_start = time.perf_counter()
                with conn.cursor() as cur:
                    for table in TABLE_ORDER:
                        with cur.copy(f"COPY {table} ({', '.join(columns[table])}) FROM STDIN") as copy:
                            for r in rows[table]:
                                copy.write_row(r)
                conn.commit()
                copied = time.perf_counter()
        else:
            conn3 = sqlite3.connect(db.path, isolation_level=None)
            conn3.execute("PRAGMA journal_mode=WAL")
            cpu = time.process_time()
            copy_start = time.perf_counter()
            conn3.execute("BEGIN IMMEDIATE")
            for table in TABLE_ORDER:
                marks = ", ".join("?" * len(columns[table]))
                conn3.executemany(f"INSERT INTO {table} ({', '.join(columns[table])}) VALUES ({marks})", rows[table])
            conn3.execute("COMMIT")
            copied = time.perf_counter()
            conn3.close()
        copy_cpu = time.process_time() - cpu
        count = row_count(rows)
        del rows
    finally:
        gc.enable()
    return {
        "seconds": (parsed - start) + (copied - copy_start),
        "parse_seconds": parsed - start,
        "copy_seconds": copied - copy_start,
        "build_seconds": built - parsed,
        "cpu_seconds": parse_cpu + copy_cpu,
        "rows": count,
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
    global SOURCE
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
    return sha


def use_source() -> None:
    """SOURCE first on the path, here and (PYTHONPATH) in every process started from here."""
    sys.path.insert(0, str(SOURCE))
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SOURCE), os.environ.get("PYTHONPATH")]))


def cli_command() -> list[str]:
    return [PYTHON, "-m", "event_pipeline.cli"]


# Started by a small launcher, not by this (large) process: Linux carries the peak RSS of
# the memory a process had before exec into its ru_maxrss, and a child forked from this
# process would report this process's peak. The launcher is small; its child's is its own.
# With a limit (KiB), a thread kills the child once its peak RSS (VmHWM) passes it.
LAUNCHER = """
import json, os, signal, sys, threading, time
out, limit, cmd = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
killed = []
start = time.perf_counter()
pid = os.posix_spawn(cmd[0], cmd, os.environ)
def watch(pidfd):
    while True:
        time.sleep(0.2)
        try:
            with open(f"/proc/{pid}/status") as fh:
                hwm = next(int(line.split()[1]) for line in fh if line.startswith("VmHWM:"))
        except (OSError, StopIteration, ValueError):
            return
        if hwm > limit:
            killed.append(hwm)
            signal.pidfd_send_signal(pidfd, signal.SIGKILL)
            return
if limit:
    threading.Thread(target=watch, args=(os.pidfd_open(pid),), daemon=True).start()
_, status, usage = os.wait4(pid, 0)
seconds = time.perf_counter() - start
with open(out, "w") as fh:
    json.dump({"seconds": seconds, "cpu_seconds": usage.ru_utime + usage.ru_stime,
               "rss_kib": usage.ru_maxrss, "exit": os.waitstatus_to_exitcode(status),
               "killed_at_rss_kib": killed[0] if killed else None}, fh)
"""
# The least a Dagster-run import costs here, beside the fixed cost: a chain of STEPS partitioned assets
# (each depending on the one before, as the import's steps do) whose last writes one row in one
# transaction, run in process on the benchmark's Dagster home with the CLI's start-up measures (collector
# off, Dagster's SQLite files held open, exit without tearing the heap down). With one step: Dagster's
# floor; with the import job's step count: the same shape with nothing done in its steps.
DAGSTER_CHAIN = """
import gc, os, sys
gc.disable()
from pathlib import Path
import dagster as dg
import sqlalchemy as sa
from event_pipeline.cli import sqlite_storage

steps = int(os.environ["BENCH_STEPS"])
keys = dg.DynamicPartitionsDefinition(name="bench_chain")

def step(i):
    @dg.asset(name=f"step_{i}", partitions_def=keys, deps=[f"step_{i - 1}"] if i else [])
    def _step(context: dg.AssetExecutionContext) -> None:
        if i == steps - 1:
            with sa.create_engine(os.environ["BENCH_URL"]).begin() as conn:
                conn.exec_driver_sql("CREATE TABLE IF NOT EXISTS bench_chain (k text)")
                conn.execute(sa.text("INSERT INTO bench_chain VALUES (:k)"), {"k": context.partition_key})
    return _step

chain = dg.define_asset_job("chain", executor_def=dg.in_process_executor)
job = dg.Definitions(assets=[step(i) for i in range(steps)], jobs=[chain]).resolve_job_def("chain")
key = os.environ["BENCH_KEY"]
with sqlite_storage.kept_open(Path(os.environ["DAGSTER_HOME"])):
    instance = dg.DagsterInstance.get()
    instance.add_dynamic_partitions("bench_chain", [key])
    ok = job.execute_in_process(instance=instance, partition_key=key).success
sys.stdout.flush()
os._exit(0 if ok else 1)
"""
MAX_RSS_KIB = 0  # --max-rss-mib, in KiB; 0: no limit
# The importer's size limits (read/limits.py) raised past what the largest archive holds: the sessions
# file of 1M sessions is 1.6 GB of JSON, beyond the default 256 MiB per data file and 1 GiB per member.
SIZE_LIMITS = {
    "EVENT_PIPELINE_MAX_JSON_BYTES": str(16 << 30),
    "EVENT_PIPELINE_MAX_MEMBER_BYTES": str(16 << 30),
    "EVENT_PIPELINE_MAX_TOTAL_BYTES": str(32 << 30),
}


def run_measured(command: list[str], env: dict[str, str]) -> tuple[dict[str, Any], list[str], str]:
    """Run a command through the launcher: its wall time, CPU time, peak RSS; its stdout lines and stderr."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, tempfile.NamedTemporaryFile() as usage:
        launcher = [sys.executable, "-c", LAUNCHER, usage.name, str(MAX_RSS_KIB), *command]
        subprocess.run(launcher, stdout=out, stderr=err, env=env, cwd=SOURCE, check=True)
        measured = json.loads(Path(usage.name).read_text())
        out.seek(0)
        err.seek(0)
        lines = out.read().decode().strip().splitlines()
        stderr = err.read().decode(errors="replace")
    return measured, lines, stderr


def run_cli(args: list[str], env: dict[str, str]) -> dict[str, Any]:
    """Run the CLI; wall time, CPU time and peak RSS of that very process (wait4), its JSON line."""
    measured, lines, stderr = run_measured([*cli_command(), *args], env)
    try:
        payload = json.loads(lines[-1]) if lines else {}
    except json.JSONDecodeError:
        payload = {"state": "UNPARSEABLE", "stdout": lines[-1][:500]}
    if measured.get("killed_at_rss_kib"):
        payload = {"state": "KILLED", "error": f"killed: peak RSS passed --max-rss-mib ({MAX_RSS_KIB // 1024} MiB)"}
    if payload.get("state") != "SUCCESS":
        log(f"  import failed (exit {measured['exit']}): {json.dumps(payload)[:400]} / {stderr[-400:]}")
    return {**measured, "payload": payload}


def time_python(code: str, env: dict[str, str]) -> dict[str, Any]:
    """``python -c code`` with the benchmarked interpreter, through the same launcher as the CLI."""
    measured, _lines, stderr = run_measured([PYTHON, "-c", code], env)
    if measured["exit"] != 0:
        log(f"  python -c {code!r} failed (exit {measured['exit']}): {stderr[-400:]}")
        return {**measured, "state": "FAILURE", "error": stderr[-400:]}
    return {**measured, "state": "SUCCESS"}


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
    # Media into a throwaway folder, not the data/ of the checkout (someone may be working in it).
    env = {**os.environ, "DAGSTER_HOME": str(home), "EVENT_PIPELINE_DATA_DIR": str(home / "data"), **SIZE_LIMITS}
    env.pop("EVENT_PIPELINE_DATABASE_URL", None)
    columns = table_columns()
    once = set(args.once)
    sizes = sorted(set(args.sizes) | once)
    rbr = "rbr" not in args.skip
    rbr_sizes = [n for n in sizes if n not in once] if rbr else []
    archives = {
        n: archive_paths(n, workdir, args.seed)
        for n in sorted({TINY, *sizes, *([args.rbr_limit] if any(n > args.rbr_limit for n in rbr_sizes) else [])})
    }
    info = {n: archive_info(n, plain) for n, (plain, _edited) in archives.items()}
    results: list[dict[str, Any]] = []
    tag = os.getpid()

    def record(backend: str, n: int, approach: str, rep: int, outcome: dict[str, Any]) -> None:
        outcome = {"backend": backend, "n": n, "approach": approach, "repeat": rep, **outcome}
        outcome["load_average_1m"] = os.getloadavg()[0]  # other work on the machine skews wall times
        results.append(outcome)
        rss = f", {outcome['rss_kib'] / 1024:.0f} MiB" if outcome.get("rss_kib") else ""
        run = f" (run {outcome['run_seconds']:.2f} s)" if outcome.get("run_seconds") else ""
        parts = f" (parse {outcome['parse_seconds']:.2f} s" if outcome.get("copy_seconds") is not None else ""
        parts += f", COPY {outcome['copy_seconds']:.2f} s)" if parts else ""
        log(f"  {backend} N={n} {approach} #{rep}: {outcome['seconds']:.2f} s{parts}{run}{rss}")

    try:
        for backend in args.backends:
            log(f"== {backend}")
            # Warm-up (the first run of a home creates its storage; also warms the page cache), then the
            # fixed cost, interleaved with the bare interpreter + Dagster import it is measured against.
            tiny, _ = archives[TINY]
            with Database(backend, f"bench_{tag}_warmup", workdir) as db:
                project_import(db, tiny, "warmup", env)
            time_python("import dagster", env)
            for rep in range(args.repeat):
                record(backend, TINY, "import_dagster", rep, time_python("import dagster", env))
                with Database(backend, f"bench_{tag}_tiny", workdir) as db:
                    key = f"tiny-{backend}-{rep}"
                    fresh = project_import(db, tiny, key, env)
                    record(backend, TINY, "startup_fresh", rep, fresh)
                    record(backend, TINY, "startup_unchanged", rep, project_import(db, tiny, key, env))
                    # Dagster's floor (one step), and the import job's shape with empty steps.
                    for approach, steps in (("dagster_one_step", 1), ("dagster_chain", len(fresh.get("steps") or {}))):
                        if steps:
                            chain_env = {**env, "BENCH_URL": db.url, "BENCH_STEPS": str(steps)}
                            chain_env["BENCH_KEY"] = f"{approach}-{backend}-{rep}"
                            outcome = {**time_python(DAGSTER_CHAIN, chain_env), "chain_steps": steps}
                            record(backend, TINY, approach, rep, outcome)
                # As the CLI imports them: the collector off, no teardown at the exit (os._exit). A plain
                # `python -c "import event_pipeline.import_definitions"` took 1.3-1.4 s here, this 0.8 s.
                code = "import gc; gc.disable(); import os, event_pipeline.import_definitions; os._exit(0)"
                record(backend, TINY, "import_definitions", rep, time_python(code, env))
            for n in sizes:
                plain, edited = archives[n]
                repeats = args.repeat_large if n >= LARGE and args.repeat_large else args.repeat
                repeats = 1 if n in once else repeats
                for rep in range(repeats):
                    with Database(backend, f"bench_{tag}_p", workdir) as db:
                        key = f"bench-{backend}-{n}-{rep}"
                        fresh = project_import(db, plain, key, env)
                        record(backend, n, "project", rep, fresh)
                        if fresh.get("state") == "SUCCESS":  # a failed import leaves nothing to re-import onto
                            record(backend, n, "reimport_unchanged", rep, project_import(db, plain, key, env))
                            record(backend, n, "reimport_edited", rep, project_import(db, edited, key, env))
                    with Database(backend, f"bench_{tag}_floor", workdir) as db:
                        record(backend, n, "floor", rep, load_floor(backend, db, plain, columns))
                    if n in once:
                        continue
                    if "raw" not in args.skip:
                        with Database(backend, f"bench_{tag}_raw", workdir) as db:
                            record(backend, n, "raw", rep, load_raw(backend, db, plain, columns, bare=False))
                    if "bare" not in args.skip:
                        with Database(backend, f"bench_{tag}_bare", workdir) as db:
                            record(backend, n, "raw_bare", rep, load_raw(backend, db, plain, columns, bare=True))
                    if rbr and n <= args.rbr_limit:
                        with Database(backend, f"bench_{tag}_rbr", workdir) as db:
                            record(backend, n, "row_by_row", rep, load_row_by_row(backend, db, plain, columns))
            if any(n > args.rbr_limit for n in rbr_sizes):
                extrapolate_row_by_row(backend, args, rbr_sizes, archives, info, columns, results, record)
    finally:
        shutil.rmtree(home, ignore_errors=True)
    return {"archives": info, "results": results}


def extrapolate_row_by_row(
    backend: str,
    args: argparse.Namespace,
    sizes: list[int],
    archives: dict[int, tuple[Path, Path]],
    info: dict[int, dict[str, Any]],
    columns: dict[str, list[str]],
    results: list[dict[str, Any]],
    record: Any,
) -> None:
    """Row by row above --rbr-limit: the --rbr-limit archive's median, per row, times the rows."""
    measured = [r for r in results if r["backend"] == backend and r["approach"] == "row_by_row"]
    base = [r["seconds"] for r in measured if r["n"] == args.rbr_limit]
    if not base:
        small, _ = archives[args.rbr_limit]
        for rep in range(args.repeat):
            with Database(backend, f"bench_{os.getpid()}_rbr", Path(args.workdir)) as db:
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


APPROACHES = (
    "dagster_chain",
    "dagster_one_step",
    "floor",
    "import_dagster",
    "import_definitions",
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
                    "copy_seconds": median(r.get("copy_seconds") for r in runs),
                    "build_seconds": median(r.get("build_seconds") for r in runs),
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


def spaced(n: int) -> str:
    """1 000 000, as BENCHMARKS.md writes numbers."""
    return f"{n:,}".replace(",", " ")


def rss_goal_mib(n: int) -> float | None:
    """Issue 14's peak-RSS bound for an archive of n sessions (< 512 MiB up to 100k, < 1 GiB up to 1M)."""
    return next((float(bound) for limit, bound in GOAL_RSS_MIB if n <= limit), None)


def headline(summary: dict[str, Any]) -> dict[str, Any]:
    """Issue 14's figures for one backend, from the medians: per size, and whether each goal holds.

    A goal holds at the issue's size (100k; the memory goal at 100k and 1M):
    ``holds`` is True/False there, None if that size was not measured.
    """
    tiny = summary.get(str(TINY), {})

    def sec(cell: dict[str, Any], approach: str, field: str = "seconds") -> float | None:
        return (cell.get(approach) or {}).get(field)

    fixed, dagster = sec(tiny, "startup_fresh"), sec(tiny, "import_dagster")
    definitions, fixed_run = sec(tiny, "import_definitions"), sec(tiny, "startup_fresh", "run_seconds")
    steps = (tiny.get("startup_fresh") or {}).get("steps") or {}
    one_step, chain = sec(tiny, "dagster_one_step"), sec(tiny, "dagster_chain")
    out: dict[str, Any] = {
        "fixed": {
            "seconds": fixed,
            "import_dagster_seconds": dagster,
            "over_import_dagster": fixed / dagster if fixed and dagster else None,
            "goal": GOAL_FIXED_OVER_DAGSTER,
            "holds": (fixed / dagster <= GOAL_FIXED_OVER_DAGSTER) if fixed and dagster else None,
            "repeats": (tiny.get("startup_fresh") or {}).get("repeats"),
            # Where it goes: the interpreter and the import job's definitions (Dagster included), the
            # Dagster run (its steps and the bookkeeping between them), and the rest.
            "split": {
                "import_definitions": definitions,
                "dagster_run": fixed_run,
                "dagster_run_steps": sum(v for v in steps.values() if v) if steps else None,
                "steps": len(steps),
                "rest": fixed - definitions - fixed_run if fixed and definitions and fixed_run else None,
            },
            "one_step_job_seconds": one_step,
            "one_step_job_over_import_dagster": one_step / dagster if one_step and dagster else None,
            "empty_chain_seconds": chain,
            "empty_chain_over_import_dagster": chain / dagster if chain and dagster else None,
            "rss_mib": sec(tiny, "startup_fresh", "rss_mib"),
            "unchanged_seconds": sec(tiny, "startup_unchanged"),
        },
        "sizes": {},
    }
    for n in sorted((k for k in summary if int(k) != TINY), key=int):
        cell = summary[n]
        floor, project = sec(cell, "floor"), sec(cell, "project")
        unchanged, edited = sec(cell, "reimport_unchanged"), sec(cell, "reimport_edited")
        rss, rss_goal = sec(cell, "project", "rss_mib"), rss_goal_mib(int(n))
        beyond = project - fixed if project is not None and fixed is not None else None
        figures: dict[str, Any] = {
            "repeats": (cell.get("project") or {}).get("repeats"),
            "floor_seconds": floor,
            "floor_parse_seconds": sec(cell, "floor", "parse_seconds"),
            "floor_copy_seconds": sec(cell, "floor", "copy_seconds"),
            "floor_build_rows_seconds": sec(cell, "floor", "build_seconds"),
            "project_seconds": project,
            "project_run_seconds": sec(cell, "project", "run_seconds"),
            "beyond_fixed_seconds": beyond,
            "beyond_fixed_over_floor": beyond / floor if beyond is not None and floor else None,
            "peak_rss_mib": rss,
            "peak_rss_goal_mib": rss_goal,
            "unchanged_seconds": unchanged,
            "unchanged_over_fixed": unchanged / fixed if unchanged and fixed else None,
            "edited_seconds": edited,
            "edited_over_full": edited / project if edited and project else None,
        }
        figures["holds"] = {
            "beyond_fixed": figures["beyond_fixed_over_floor"] <= GOAL_BEYOND_OVER_FLOOR
            if figures["beyond_fixed_over_floor"] is not None
            else None,
            "peak_rss": rss < rss_goal if rss is not None and rss_goal is not None else None,
            "unchanged": figures["unchanged_over_fixed"] <= GOAL_UNCHANGED_OVER_FIXED
            if figures["unchanged_over_fixed"] is not None
            else None,
            "edited": figures["edited_over_full"] <= GOAL_EDITED_OVER_FULL
            if figures["edited_over_full"] is not None
            else None,
        }
        out["sizes"][n] = figures
    goal_sizes = {"beyond_fixed": [ISSUE_N], "peak_rss": [ISSUE_N, 1_000_000], "unchanged": [ISSUE_N]}
    goal_sizes["edited"] = [ISSUE_N]
    out["holds"] = {"fixed": out["fixed"]["holds"]}
    for figure, at in goal_sizes.items():
        verdicts = [out["sizes"][str(n)]["holds"][figure] for n in at if str(n) in out["sizes"]]
        verdicts = [v for v in verdicts if v is not None]
        out["holds"][figure] = all(verdicts) if verdicts else None
    return out


def markdown_headline(backend: str, h: dict[str, Any]) -> list[str]:
    """Issue 14's table: a row per figure, a column per size (10 sessions: the fixed cost), the goals."""

    def num(value: float | None, fmt: str = "{:.2f}") -> str:
        return fmt.format(value) if value is not None else "–"

    def mark(ok: bool | None) -> str:
        return {True: " ✓", False: " ✗", None: ""}[ok]

    def holds(figure: str, at: str) -> str:
        ok = h["holds"].get(figure)
        if ok is None:
            return f"not measured ({at})"
        return f"**{'yes' if ok else 'no'}** ({at})"

    sizes = h["sizes"]
    fixed = h["fixed"]
    write = "`COPY`" if backend == "postgresql" else "`executemany`"
    header = ["figure", "goal", f"{TINY} (fixed cost, ×{fixed['repeats'] or 0})"]
    header += [f"{spaced(int(n))} (×{f['repeats'] or 0})" for n, f in sizes.items()]
    header.append("holds")
    rows: list[list[str]] = []

    def row(figure: str, goal: str, tiny: str, cell: Any, verdict: str) -> None:
        rows.append([figure, goal, tiny, *(cell(f, int(n)) for n, f in sizes.items()), verdict])

    row(
        f"floor: unzip + `orjson.loads` every member, + {write} into plain tables, s (parse + {write})",
        "—",
        "–",
        lambda f, n: f"{num(f['floor_seconds'])} ({num(f['floor_parse_seconds'])} + {num(f['floor_copy_seconds'])})",
        "—",
    )
    row(
        "import through the CLI, s (Dagster run)",
        "—",
        f"{num(fixed['seconds'])} ({num(fixed['split']['dagster_run'])})",
        lambda f, n: f"{num(f['project_seconds'])} ({num(f['project_run_seconds'])})",
        "—",
    )
    row(
        "import time beyond the fixed cost, s (÷ floor)",
        f"≤ {GOAL_BEYOND_OVER_FLOOR:g}× the floor",
        "–",
        lambda f, n: (
            f"{num(f['beyond_fixed_seconds'])} ({num(f['beyond_fixed_over_floor'], '{:.1f}')}×)"
            + mark(f["holds"]["beyond_fixed"])
        ),
        holds("beyond_fixed", "100k"),
    )
    row(
        f'fixed cost: {TINY}-session archive through the CLI, s (÷ `python -c "import dagster"`)',
        f"≤ {GOAL_FIXED_OVER_DAGSTER:g}× `import dagster`",
        f"{num(fixed['seconds'])} = {num(fixed['over_import_dagster'], '{:.1f}')}× "
        f"{num(fixed['import_dagster_seconds'])}" + mark(fixed["holds"]),
        lambda f, n: "",
        holds("fixed", "10 sessions"),
    )
    row(
        "peak RSS of the CLI process, MiB",
        "< 512 MiB at 100k, < 1 GiB at 1M",
        num(fixed["rss_mib"], "{:.0f}"),
        lambda f, n: num(f["peak_rss_mib"], "{:.0f}") + mark(f["holds"]["peak_rss"]),
        holds("peak_rss", "100k and 1M"),
    )
    row(
        "unchanged re-import, s (÷ fixed cost)",
        f"≈ fixed cost (≤ {GOAL_UNCHANGED_OVER_FIXED:g}×)",
        num(fixed["unchanged_seconds"]),
        lambda f, n: (
            f"{num(f['unchanged_seconds'])} ({num(f['unchanged_over_fixed'])}×)" + mark(f["holds"]["unchanged"])
        ),
        holds("unchanged", "100k"),
    )
    row(
        "1% of sessions edited, s (÷ full import)",
        f"≤ {GOAL_EDITED_OVER_FULL:g}× a full import",
        "–",
        lambda f, n: f"{num(f['edited_seconds'])} ({num(f['edited_over_full'])}×)" + mark(f["holds"]["edited"]),
        holds("edited", "100k"),
    )
    lines = [f"\n### {backend}: issue 14\n", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    split = fixed["split"]
    if fixed["seconds"] and split["import_definitions"] and split["dagster_run"]:
        own = num(split["dagster_run_steps"])
        steps = f", of which its {split['steps']} steps' own {own} s" if split["steps"] else ""
        lines.append(
            f"\nWhere the fixed cost ({num(fixed['seconds'])} s) goes: interpreter start-up and the import job's "
            f"definitions, Dagster included, imported as the CLI does (collector off, no teardown) "
            f"{num(split['import_definitions'])} s; the Dagster run {num(split['dagster_run'])} s{steps}; "
            f"the rest (Dagster's storage modules and instance, schema check, run creation, result, exit) "
            f"{num(split['rest'])} s."
        )
    if fixed["one_step_job_seconds"]:
        chain = ""
        if fixed["empty_chain_seconds"]:
            chain = (
                f"; a chain of as many steps as the import job's, with nothing done in them, "
                f"{num(fixed['empty_chain_seconds'])} s = {num(fixed['empty_chain_over_import_dagster'], '{:.1f}')}×"
            )
        lines.append(
            f"\nThe least a Dagster-run import costs here (in process, with the CLI's start-up measures): one "
            f"partitioned asset writing one row {num(fixed['one_step_job_seconds'])} s = "
            f"{num(fixed['one_step_job_over_import_dagster'], '{:.1f}')}× `import dagster`{chain}."
        )
    built = [
        f"{spaced(int(n))}: {num(f['floor_build_rows_seconds'])} s"
        for n, f in sizes.items()
        if f["floor_build_rows_seconds"] is not None
    ]
    if built:
        lines.append(
            "Floor cells: parse + COPY (medians of each; the total is the median of the sums). Building the rows "
            f"from the parsed documents is not in the floor ({'; '.join(built)})."
        )
    return lines


def markdown(data: dict[str, Any]) -> str:
    """The headline table of issue 14 per backend, then the older table of issue 6."""
    lines = []
    for backend, summary in data["summary"].items():
        lines += markdown_headline(backend, data.get("headline", {}).get(backend) or headline(summary))
    return "\n".join(lines) + "\n" + markdown_issue6(data)


def markdown_issue6(data: dict[str, Any]) -> str:
    """The older table (issue 6): raw, bare and row by row beside the project."""
    lines = []
    for backend, sizes in data["summary"].items():
        lines += [
            f"\n### {backend}: against raw, bare and row by row (issue 6)\n",
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
    fig, axes = plt.subplots(1, len(backends) + 1, figsize=(6.5 * (len(backends) + 1), 5), squeeze=False)
    styles = {
        "project": ("event-pipeline import (end to end)", "o-", "C0"),
        "floor": ("floor: orjson parse + COPY into plain tables", "v-", "C1"),
        "reimport_edited": ("re-import, 1% edited", "s--", "C4"),
        "reimport_unchanged": ("re-import, unchanged", "^:", "C5"),
        "raw": ("raw: COPY / executemany, one transaction", "D-", "C2"),
        "row_by_row": ("row by row: INSERT + COMMIT per row", "x-", "C3"),
    }
    for ax, backend in zip(axes[0][:-1], backends, strict=True):
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
            ax.axhline(startup, color="grey", ls="--", lw=1, label=f"fixed cost: CLI import of {TINY} sessions")
            # Issue 14's figure: the import beyond the fixed cost, against twice the floor.
            h = headline(data["summary"][backend])["sizes"]
            beyond = [(int(n), f["beyond_fixed_seconds"]) for n, f in h.items() if (f["beyond_fixed_seconds"] or 0) > 0]
            floor2 = [(int(n), 2 * f["floor_seconds"]) for n, f in h.items() if f["floor_seconds"]]
            if beyond:
                ax.plot(*zip(*beyond, strict=True), "d--", color="C0", label="import beyond the fixed cost")
            if floor2:
                ax.plot(*zip(*floor2, strict=True), ":", color="C1", label="2× the floor (issue 14's goal)")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("sessions in the archive (N)")
        ax.set_ylabel("seconds (median)")
        ax.set_title(f"{backend}")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8, title="circled: extrapolated", title_fontsize=7)
    memory(axes[0][-1], data)
    fig.suptitle("Importing a synthetic Open Event archive: time and memory against size")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def memory(ax: Any, data: dict[str, Any]) -> None:
    """Peak RSS of the CLI process against N (fresh import, per backend), with issue 14's bounds."""
    for i, backend in enumerate(data["summary"]):
        cells = data["summary"][backend]
        points = [
            (int(n), cells[n]["project"]["rss_mib"])
            for n in sorted(cells, key=int)
            if int(n) != TINY and (cells[n].get("project") or {}).get("rss_mib")
        ]
        if points:
            ax.plot(*zip(*points, strict=True), "o-", color=f"C{i}", label=f"{backend}: fresh import")
            for n, mib in points:
                ax.annotate(f"{mib:.0f}", (n, mib), textcoords="offset points", xytext=(4, 4), fontsize=7)
    ax.axhline(512, color="C3", ls="--", lw=1, label="512 MiB (goal at 100k)")
    ax.axhline(1024, color="C3", ls=":", lw=1, label="1 GiB (goal at 1M)")
    ax.set_xscale("log")
    ax.set_ylim(bottom=0)
    ax.set_xlabel("sessions in the archive (N)")
    ax.set_ylabel("peak RSS of the CLI process, MiB (median)")
    ax.set_title("memory growth")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)


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
        env = {**os.environ, "DAGSTER_HOME": str(home), "EVENT_PIPELINE_DATA_DIR": str(home / "data")}
        log(f"profiling one import of {n} sessions")
        start = time.perf_counter()
        subprocess.run([PYTHON, "-c", code], env=env, check=True, stdout=subprocess.DEVNULL, cwd=SOURCE)
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
    import orjson

    probe = "import platform, sys, dagster, orjson, psycopg; print(platform.python_version(), sys.prefix, "
    probe += "dagster.__version__, orjson.__version__, psycopg.__version__)"
    cli = subprocess.run([PYTHON, "-c", probe], capture_output=True, text=True, check=True).stdout.split()
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "git_head": git,
        "git_dirty": dirty,
        "python": platform.python_version(),
        "dagster": dagster.__version__,
        "orjson": orjson.__version__,
        "benchmarked_interpreter": {
            "python": PYTHON,
            **dict(zip(("version", "prefix", "dagster", "orjson", "psycopg"), cli, strict=True)),
        },
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "postgresql": pg,
        "sqlite": sqlite3.sqlite_version,
    }


def sizes_list(text: str) -> list[int]:
    return [int(n.replace("_", "")) for n in text.split(",") if n.strip()]


def main(argv: list[str] | None = None) -> int:
    global PYTHON, MAX_RSS_KIB
    # A plain kill ends the run through the finally blocks: throwaway databases are dropped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--sizes", default="1000,10000,100000", help="comma-separated session counts")
    parser.add_argument(
        "--once", default="", help="comma-separated session counts measured once, issue 14's figures only (1000000)"
    )
    parser.add_argument("--repeat", type=int, default=3, help="repetitions per size (the median is reported)")
    parser.add_argument("--repeat-large", type=int, default=0, help=f"repetitions for sizes >= {LARGE} (0: --repeat)")
    parser.add_argument("--backends", default="postgresql", help="postgresql,sqlite")
    parser.add_argument(
        "--skip",
        default="",
        help="comma-separated older measurements to leave out: raw, bare, rbr (row by row); 'old' for all three",
    )
    parser.add_argument(
        "--rbr-limit", type=int, default=10_000, help="row-by-row measured up to this N, extrapolated above"
    )
    parser.add_argument(
        "--python",
        default=PYTHON,
        help="interpreter that runs the CLI and `import dagster` (its venv's packages, this checkout's code); "
        "default: the checkout's .venv, else this interpreter",
    )
    memory_mib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // MIB
    parser.add_argument(
        "--max-rss-mib",
        type=int,
        default=memory_mib // 2,
        help="kill a CLI run whose peak RSS passes this (default: half the memory); 0: no limit",
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
    args.sizes = sizes_list(args.sizes)
    args.once = sizes_list(args.once)
    args.backends = [b for b in args.backends.split(",") if b]
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    args.skip = sorted({"raw", "bare", "rbr"} if "old" in skip else skip)
    if set(args.skip) - {"raw", "bare", "rbr"}:
        parser.error(f"--skip: unknown {sorted(set(args.skip) - {'raw', 'bare', 'rbr'})}")
    PYTHON = str(Path(args.python).absolute())  # a venv's python is a symlink: resolving it would leave the venv
    MAX_RSS_KIB = args.max_rss_mib * 1024
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    revision = use_ref(args.ref, Path(args.workdir)) if args.ref else "working tree"
    use_source()
    data: dict[str, Any] = {"environment": environment(), "arguments": vars(args)}
    data["environment"]["benchmarked_revision"] = revision
    data["environment"]["benchmarked_source"] = str(SOURCE)
    if not args.sizes and not args.once:  # --sizes '' --profile N: only the profile
        if args.profile:
            profile(args.profile, Path(args.workdir), args.seed, out / f"profile-{args.profile}.txt")
        return 0
    log(f"benchmarking {SOURCE} with {PYTHON}")
    data.update(measure(args))
    data["archives"] = {str(n): v for n, v in data["archives"].items()}
    data["summary"] = summarise({**data, "archives": {int(n): v for n, v in data["archives"].items()}})
    data["headline"] = {backend: headline(summary) for backend, summary in data["summary"].items()}
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
