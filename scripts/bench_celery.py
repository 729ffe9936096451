"""Throughput of the ``bulk_import`` job on real Celery workers: archives per minute, 1 worker vs 2.

Each measurement sets up a fresh throwaway deployment on this machine (the
same harness as ``tests/test_celery.py``: instance and target on their own
PostgreSQL databases, RabbitMQ, workers started with ``dagster-celery worker
start``), imports N new archives with one ``dagster job execute`` and reads
the run's start and end from Dagster's run storage. The figure is archives
divided by run duration (the run's first to last event: listing, every
import step, the summary); the command's own start-up is reported apart.

    .venv/bin/python scripts/bench_celery.py                      # defaults: 40 archives, 6 and 500 sessions
    .venv/bin/python scripts/bench_celery.py --archives 60 --sessions 500 --workers 1 2

Needs PostgreSQL (EVENT_PIPELINE_TEST_PG, default postgresql://postgres@127.0.0.1:5432/test)
and RabbitMQ (EVENT_PIPELINE_TEST_BROKER, default amqp://guest:guest@127.0.0.1:5672//).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "scripts"))

from celery_cluster import PG_ADMIN, Cluster, synthetic_archive  # noqa: E402


def make_archives(folder: Path, count: int, sessions: int) -> list[Path]:
    """``count`` distinct archives: the tiny test archive for <= 50 sessions, else the realistic generator."""
    folder.mkdir(parents=True, exist_ok=True)
    if sessions <= 50:
        return [synthetic_archive(folder / f"bench-{i:03d}.zip", i, sessions=sessions) for i in range(count)]
    from generate_archive import generate  # scripts/generate_archive.py

    first = Path(generate(sessions, folder / "bench-000.zip", seed=1)["path"])
    # Same content under different keys: every archive is a separate event, and as costly as the first.
    paths = [first]
    for i in range(1, count):
        copy = folder / f"bench-{i:03d}.zip"
        copy.write_bytes(first.read_bytes())
        paths.append(copy)
    return paths


def database_time(cluster: Cluster) -> dict[str, dict[str, float]]:
    """From pg_stat_database (PostgreSQL 14+): statement time and commits in each throwaway database."""
    import psycopg

    out = {}
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        for role, url in (("target", cluster.target_url), ("instance", cluster.instance_url)):
            row = conn.execute(
                "select active_time, xact_commit from pg_stat_database where datname = %s", (url.rsplit("/", 1)[1],)
            ).fetchone()
            out[role] = {"active_ms": float(row[0] or 0), "commits": float(row[1] or 0)}
    return out


def measure(workdir: Path, archives: list[Path], workers: int, concurrency: int, timeout: float) -> dict:
    home = workdir / "home"
    cluster = Cluster(workdir, home)
    try:
        started = [cluster.start_worker(f"bench{i + 1}", concurrency=concurrency) for i in range(workers)]
        cluster.wait_ready(started)
        time.sleep(2)
        db_before = database_time(cluster)  # schema creation and start-up are not the run's
        load_before = os.getloadavg()[0]
        t0 = time.monotonic()
        proc = cluster.launch_bulk(archives, "bench")
        code = proc.wait(timeout=timeout)
        wall = time.monotonic() - t0
        run, stats = cluster.run_for_tag("bench")
        if code != 0 or run is None or run.status.value != "SUCCESS":
            raise RuntimeError(f"bulk run failed ({code}): {(workdir / 'run-bench.log').read_text()[-3000:]}")
        duration = stats.end_time - stats.start_time
        for worker in cluster.workers:  # their sessions end, so the server has counted everything they did
            worker.stop()
        time.sleep(2)
        db_after = database_time(cluster)
        db = {
            role: {k: db_after[role][k] - db_before[role][k] for k in db_after[role]} for role in ("target", "instance")
        }
        return {
            "workers": workers,
            "concurrency": concurrency,
            "archives": len(archives),
            "run_seconds": round(duration, 2),
            "command_seconds": round(wall, 2),
            "archives_per_minute": round(len(archives) / duration * 60, 1),
            "load_before": round(load_before, 2),
            # Time PostgreSQL spent executing statements, per archive: the shared resource.
            "pg_ms_per_archive_target": round(db["target"]["active_ms"] / len(archives), 1),
            "pg_ms_per_archive_instance": round(db["instance"]["active_ms"] / len(archives), 1),
            "commits_per_archive_instance": round(db["instance"]["commits"] / len(archives), 1),
        }
    finally:
        cluster.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--archives", type=int, default=40)
    parser.add_argument("--sessions", type=int, nargs="+", default=[6, 500], help="sessions per archive (one run each)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--concurrency", type=int, default=1, help="pool processes per worker")
    parser.add_argument("--timeout", type=float, default=1200)
    args = parser.parse_args(argv)

    results = []
    with tempfile.TemporaryDirectory(prefix="ep-bench-celery-") as tmp:
        for sessions in args.sessions:
            archives = make_archives(Path(tmp) / f"archives-{sessions}", args.archives, sessions)
            size = sum(p.stat().st_size for p in archives) / len(archives)
            for workers in args.workers:
                row = measure(
                    Path(tmp) / f"run-{sessions}-{workers}", archives, workers, args.concurrency, args.timeout
                )
                row.update(sessions=sessions, archive_kib=round(size / 1024, 1))
                print(json.dumps(row), file=sys.stderr, flush=True)
                results.append(row)

    print(f"machine: {os.cpu_count()} cores; {args.concurrency} pool process(es) per worker")
    print(
        "| sessions/archive | workers | archives | run (s) | archives/min | archives/hour"
        " | PG ms/archive (events db) | PG ms/archive (Dagster db) |"
    )
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in results:
        per_hour = round(r["archives_per_minute"] * 60)
        print(
            f"| {r['sessions']} | {r['workers']} | {r['archives']} | {r['run_seconds']} |"
            f" {r['archives_per_minute']} | {per_hour} | {r['pg_ms_per_archive_target']} |"
            f" {r['pg_ms_per_archive_instance']} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
