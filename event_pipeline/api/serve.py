"""``make serve``: the Dagster webserver, the daemon and the import API, started and stopped together.

Three processes share one environment (so one ``DAGSTER_HOME``, one events
database, one data folder): ``dagster-webserver`` on
``EVENT_PIPELINE_UI_HOST:EVENT_PIPELINE_UI_PORT`` (127.0.0.1:3000),
``dagster-daemon run``, and the API under uvicorn on
``EVENT_PIPELINE_API_HOST:EVENT_PIPELINE_API_PORT`` (127.0.0.1:8000). If
``EVENT_PIPELINE_JWT_SECRET`` is unset, a secret is made in the data folder on
first start and its place is printed. When one process ends, or on SIGINT or
SIGTERM, all of them are stopped (each in its own process group, so the code
servers and run workers the daemon started go too).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from event_pipeline import settings
from event_pipeline.api import config

STOP_SECONDS = 15  # after SIGTERM, before SIGKILL (within the 20 s a test or systemd gives serve itself)


def _commands(bin_dir: Path) -> dict[str, list[str]]:
    workspace = ["-m", "event_pipeline.definitions"]
    return {
        "webserver": [
            str(bin_dir / "dagster-webserver"),
            *workspace,
            "-h",
            config.ui_host(),
            "-p",
            str(config.ui_port()),
        ],
        "daemon": [str(bin_dir / "dagster-daemon"), "run", *workspace],
        "api": [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            "event_pipeline.api.app:create_app",
            "--host",
            config.api_host(),
            "--port",
            str(config.api_port()),
            "--no-server-header",
        ],
    }


def _stop(procs: dict[str, subprocess.Popen]) -> None:
    for proc in procs.values():
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_SECONDS
    for proc in procs.values():
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)  # what is left of the group: code servers, run workers


def _prepare_instance() -> None:
    """Create a fresh home's storage tables here, once: three processes creating them at once on SQLite
    collide ("table ... already exists"), as two CLI imports would (see cli.run_import)."""
    import dagster as dg

    with dg.DagsterInstance.get() as instance:
        instance.get_runs(limit=1)
        instance.all_instigator_state()


def main() -> int:
    """Start the three processes; return when one of them ends or a stop signal comes (exit code 0 on a signal)."""
    home = settings.dagster_home()  # made, with the project's dagster.yaml, if missing
    os.environ["DAGSTER_HOME"] = str(home)
    _prepare_instance()
    secret, where = config.ensure_secret()
    os.environ[config.SECRET_ENV] = secret  # the API reads it from here; it never appears on a command line
    print(f"DAGSTER_HOME: {home}", flush=True)
    if where is not None:
        print(f"token secret: {where} (set EVENT_PIPELINE_JWT_SECRET to use your own)", flush=True)
    print(f"Dagster UI:   http://{config.ui_host()}:{config.ui_port()}", flush=True)
    print(f"import API:   http://{config.api_host()}:{config.api_port()} (docs at /docs)", flush=True)
    stopping: list[int] = []

    def on_signal(signum: int, _frame: object) -> None:
        stopping.append(signum)

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, on_signal)
    bin_dir = Path(sys.executable).parent
    procs: dict[str, subprocess.Popen] = {}
    try:
        for name, args in _commands(bin_dir).items():
            procs[name] = subprocess.Popen(args, start_new_session=True)
        while not stopping:
            ended = {name: proc.returncode for name, proc in procs.items() if proc.poll() is not None}
            if ended:
                print(f"stopping: {', '.join(f'{n} exited with {c}' for n, c in ended.items())}", flush=True)
                return 1
            time.sleep(0.5)
        return 0
    finally:
        _stop(procs)


if __name__ == "__main__":
    sys.exit(main())
