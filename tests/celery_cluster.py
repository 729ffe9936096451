"""A throwaway Celery deployment on this machine, for the end-to-end test and scripts/bench_celery.py.

Real pieces only: a Dagster instance on its own PostgreSQL database, the target
database on another, RabbitMQ as the broker, workers started with the standard
``dagster-celery worker start`` command as subprocesses (each the leader of its
own process group, so a kill reaches its pool processes too), and the
``bulk_import`` job run with ``dagster job execute``. Every wait is bounded.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg
from archives import kebab_event, write_zip

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
PG_ADMIN = os.environ.get("EVENT_PIPELINE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
BROKER = os.environ.get("EVENT_PIPELINE_TEST_BROKER", "amqp://guest:guest@127.0.0.1:5672//")
QUEUE = "dagster"  # dagster-celery's queue


# --- databases ---------------------------------------------------------------


def create_database(prefix: str) -> str:
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=5) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    return f"{PG_ADMIN.rsplit('/', 1)[0]}/{name}"


def drop_database(url: str) -> None:
    name = url.rsplit("/", 1)[1]
    with psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=5) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def create_vhost(broker: str = BROKER) -> str | None:
    """A RabbitMQ virtual host of our own, so runs of this suite at the same time never share a queue.

    Needs ``rabbitmqctl`` (root, broker on this machine); the broker URL for it, or None
    (then the broker's own vhost is used, purged first)."""
    ctl = shutil.which("rabbitmqctl")
    if not ctl or not broker.endswith("//") or "@127.0.0.1:" not in broker and "@localhost:" not in broker:
        return None
    name = f"ep_test_{uuid.uuid4().hex[:10]}"
    user = broker.split("://", 1)[1].split(":", 1)[0]
    try:
        subprocess.run([ctl, "add_vhost", name], check=True, timeout=60, capture_output=True)
        subprocess.run(
            [ctl, "set_permissions", "-p", name, user, ".*", ".*", ".*"], check=True, timeout=60, capture_output=True
        )
    except (subprocess.SubprocessError, OSError):
        return None
    return broker[:-1] + name


def delete_vhost(broker: str) -> None:
    ctl = shutil.which("rabbitmqctl")
    if ctl:
        subprocess.run([ctl, "delete_vhost", broker.rsplit("/", 1)[1]], timeout=60, capture_output=True)


def broker_reachable(url: str = BROKER, timeout: float = 5) -> str | None:
    """None if the broker answers, else why not."""
    import kombu

    try:
        with kombu.Connection(url, connect_timeout=timeout) as conn:
            conn.ensure_connection(max_retries=1, timeout=timeout)
    except Exception as exc:  # noqa: BLE001 - any failure means "not reachable"
        return f"{type(exc).__name__}: {exc}"
    return None


# --- archives ----------------------------------------------------------------


def synthetic_archive(path: Path, index: int, sessions: int = 6) -> Path:
    """A small valid kebab-case archive; ``sessions`` sessions and as many speakers, two links each."""
    files = kebab_event()
    files["event"]["name"] = f"Synthetic Conf {index}"
    files["event"]["social-links"] = [{"id": 1, "name": "Web", "link": f"https://conf{index}.example.org"}]
    files["speakers"] = [
        {"id": i, "name": f"Speaker {index}.{i}", "sessions": [{"id": i}]} for i in range(1, sessions + 1)
    ]
    files["sessions"] = [
        {
            "id": i,
            "title": f"Talk {index}.{i}",
            "starts-at": "2020-01-01T09:00:00+01:00",
            "track": {"id": 1 + i % 2},
            "microlocation": {"id": 1 + i % 2},
            "session-type": {"id": 1},
            "speakers": [{"id": 1 + i % sessions}],
        }
        for i in range(1, sessions + 1)
    ]
    return write_zip(path, files)


# --- the instance and the shared executor config --------------------------------


def write_instance(home: Path, instance_url: str) -> Path:
    """A DAGSTER_HOME whose run, event-log and schedule storage is PostgreSQL; tables created now."""
    home.mkdir(parents=True, exist_ok=True)
    # psycopg2, explicitly: with SQLAlchemy 2.1 a bare postgresql:// means psycopg 3, with which
    # dagster-postgres's "NOTIFY run_events, %s" is a syntax error.
    instance_url = instance_url.replace("postgresql://", "postgresql+psycopg2://", 1)
    (home / "dagster.yaml").write_text(
        f"storage:\n  postgres:\n    postgres_url: {json.dumps(instance_url)}\ntelemetry:\n  enabled: false\n"
    )
    # Create the storage tables before several processes start at once.
    subprocess.run(
        [str(BIN / "python"), "-c", "import dagster as dg; i = dg.DagsterInstance.get(); i.get_runs(limit=1)"],
        env={**os.environ, "DAGSTER_HOME": str(home)},
        check=True,
        timeout=120,
        capture_output=True,
    )
    return home


def write_celery_config(path: Path, broker: str = BROKER) -> Path:
    """The repo's deploy/celery.yaml with another broker URL: what the job and its workers share."""
    import yaml

    config = yaml.safe_load((REPO / "deploy" / "celery.yaml").read_text())
    config["execution"]["config"]["broker"] = broker
    path.write_text(yaml.safe_dump(config))
    return path


def celery_app(broker: str = BROKER):
    from dagster_celery.make_app import make_app

    return make_app({"broker": broker, "backend": "rpc://"})


def purge_queue(broker: str = BROKER) -> int:
    """Drop messages left in the queue by an earlier, interrupted run (they name dropped databases)."""
    return celery_app(broker).control.purge() or 0


# --- processes -----------------------------------------------------------------


class Worker:
    """``dagster-celery worker start`` in its own process group."""

    def __init__(self, name: str, env: dict[str, str], config: Path, log: Path, concurrency: int = 1):
        self.name = name
        self.log = log
        self.proc = subprocess.Popen(
            [
                str(BIN / "dagster-celery"),
                "worker",
                "start",
                "-A",
                "dagster_celery.app",
                "-y",
                str(config),
                "--name",
                name,
                "--",
                f"--concurrency={concurrency}",
                "--without-gossip",
                "--without-mingle",
            ],
            cwd=REPO,
            env=env,
            stdout=log.open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    @property
    def pgid(self) -> int:
        return self.proc.pid  # leader of its own session and group

    def owns(self, pid: int) -> bool:
        try:
            return os.getpgid(pid) == self.pgid
        except ProcessLookupError:
            return False

    def kill(self, sig: int = signal.SIGKILL) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pgid, sig)

    def stop(self, timeout: float = 15) -> None:
        """Warm shutdown, then SIGKILL of the whole group if it lingers."""
        if self.proc.poll() is None:
            self.kill(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=timeout)
        self.kill(signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=10)


class Cluster:
    """Everything a bulk import on Celery needs, on this machine; ``close()`` undoes it."""

    def __init__(self, workdir: Path, home: Path, *, broker: str = BROKER):
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.workers: list[Worker] = []
        self.jobs: list[subprocess.Popen] = []
        self.databases: list[str] = []
        self.own_vhost: str | None = None
        try:
            self.own_vhost = create_vhost(broker)
            self.broker = self.own_vhost or broker
            if not self.own_vhost:
                purge_queue(self.broker)
            self.instance_url = create_database("ep_celery_instance")
            self.databases.append(self.instance_url)
            self.target_url = create_database("ep_celery_target")
            self.databases.append(self.target_url)
            self.home = write_instance(home, self.instance_url)
            self.config = write_celery_config(workdir / "celery.yaml", self.broker)
        except BaseException:
            self.close()
            raise
        self.env = {
            **os.environ,
            "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",  # dagster-celery runs `celery`
            "DAGSTER_HOME": str(self.home),
            "EVENT_PIPELINE_DATABASE_URL": self.target_url,
            "EVENT_PIPELINE_CELERY_CONFIG": str(self.config),
            # Scratch and local media storage of the workers: inside the work folder, never the checkout's data/.
            "EVENT_PIPELINE_DATA_DIR": str(workdir / "data"),
            "PYTHONUNBUFFERED": "1",
        }

    def start_worker(self, name: str, concurrency: int = 1) -> Worker:
        # libpq's PGAPPNAME: the worker's name is its sessions' application_name in pg_stat_activity.
        env = {**self.env, "PGAPPNAME": name}
        worker = Worker(name, env, self.config, self.workdir / f"{name}.log", concurrency)
        self.workers.append(worker)
        return worker

    def wait_ready(self, workers: list[Worker], timeout: float = 90) -> None:
        """Until every worker answers a ping over the broker."""
        app = celery_app(self.broker)
        wanted = {f"{w.name}@" for w in workers}
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for w in workers:
                if w.proc.poll() is not None:
                    raise RuntimeError(f"worker {w.name} exited ({w.proc.returncode}): {w.log.read_text()[-3000:]}")
            replies = app.control.ping(timeout=1.0) or []
            names = {name.split("@")[0] + "@" for reply in replies for name in reply}
            if wanted <= names:
                return
        raise TimeoutError(f"workers not ready after {timeout} s: {[w.log.read_text()[-2000:] for w in workers]}")

    def launch_bulk(self, paths: list[Path], tag: str, *, force: bool = False) -> subprocess.Popen:
        """``dagster job execute`` of ``bulk_import`` (the run's own process drives the Celery steps)."""
        config = self.workdir / f"run-{tag}.yaml"
        config.write_text(
            json.dumps({"ops": {"find_archives": {"config": {"paths": [str(p) for p in paths], "force": force}}}})
        )
        proc = subprocess.Popen(
            [
                str(BIN / "dagster"),
                "job",
                "execute",
                "-m",
                "event_pipeline.definitions",
                "-j",
                "bulk_import",
                "-c",
                str(config),
                "--tags",
                json.dumps({"event_pipeline/bulk": tag}),
            ],
            cwd=REPO,
            env=self.env,
            stdout=(self.workdir / f"run-{tag}.log").open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.jobs.append(proc)
        return proc

    def run_for_tag(self, tag: str) -> Any:
        """The bulk run launched with ``tag`` and its stats (start and end times), or (None, None)."""
        import dagster as dg

        with dg.DagsterInstance.from_config(str(self.home)) as instance:
            runs = instance.get_runs(dg.RunsFilter(tags={"event_pipeline/bulk": tag}))
            return (runs[0], instance.get_run_stats(runs[0].run_id)) if runs else (None, None)

    def step_workers(self, tag: str) -> dict[str, list[str]]:
        """Step key -> the Celery workers that started it, in order (from the run's event log)."""
        import dagster as dg

        with dg.DagsterInstance.from_config(str(self.home)) as instance:
            runs = instance.get_runs(dg.RunsFilter(tags={"event_pipeline/bulk": tag}))
            out: dict[str, list[str]] = {}
            for record in instance.all_logs(runs[0].run_id, of_type=dg.DagsterEventType.ENGINE_EVENT):
                event = record.dagster_event
                if not event or "in celery worker" not in (event.message or ""):
                    continue
                metadata = event.engine_event_data.metadata
                worker = metadata.get("Celery worker")
                out.setdefault(event.step_key, []).append(str(worker.value if worker else "?"))
            return out

    def close(self) -> None:
        """Kill what we started, then drop the vhost (or purge the queue) and both databases."""
        for proc in self.jobs:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        for worker in self.workers:
            worker.stop()
        try:
            if self.own_vhost:
                delete_vhost(self.own_vhost)
            elif self.databases:
                purge_queue(self.broker)
        finally:
            from event_pipeline.db import get_engine

            get_engine.cache_clear()
            for url in self.databases:
                drop_database(url)
