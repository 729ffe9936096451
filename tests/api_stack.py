"""``make serve`` for tests: the real Dagster webserver, daemon and import API on free loopback ports.

One stack per test module (started by ``python -m event_pipeline.api.serve``,
the command ``make serve`` runs), with a temporary DAGSTER_HOME, data folder,
events database (SQLite or PostgreSQL), and an SMTP server on loopback. Every
wait is bounded.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import httpx
from processes import BIN, free_port, graphql, process, smtp_server, tail, wait_for

from event_pipeline.api.auth import make_token

SECRET = "test-secret-of-the-api-stack-0123456789"
MAX_UPLOAD = 6_000_000  # bytes: the largest sample (OTS16, 5.4 MB) fits
MAX_ACTIVE = 3
TASK_TIMEOUT = 180  # seconds for one task to end (a run waits in the queue behind others)

LOADED = "{ repositoriesOrError { ... on RepositoryConnection { nodes { name pipelines { name } } } } }"


class Stack:
    """The running stack: its API URL, folders, mailbox and database."""

    def __init__(self, root: Path, api_port: int, ui_port: int, db_url: str, mailbox: Any, log: Path, env: dict):
        self.root, self.db_url, self.mailbox, self.log, self.env = root, db_url, mailbox, log, env
        self.api = f"http://127.0.0.1:{api_port}"
        self.ui_port = ui_port
        self.home = root / "home"
        self.uploads = root / "data" / "uploads"

    def client(self, email: str = "organiser@example.org", token: str | None = None, **kw: Any) -> httpx.Client:
        token = token or make_token(email, SECRET, 1)
        return httpx.Client(base_url=self.api, headers={"Authorization": f"JWT {token}"}, timeout=120, **kw)

    def upload(self, client: httpx.Client, path: Path, name: str | None = None, **fields: str) -> httpx.Response:
        with open(path, "rb") as handle:
            return client.post(
                "/v1/events/import/json", files={"file": (name or path.name, handle, "application/zip")}, data=fields
            )

    def wait_task(self, client: httpx.Client, task_id: str, timeout: float = TASK_TIMEOUT) -> dict:
        """Poll the task until SUCCESS or FAILURE; its last body."""

        def ended():
            body = client.get(f"/v1/tasks/{task_id}").json()
            return body if body.get("state") in ("SUCCESS", "FAILURE") else None

        return self.wait(ended, f"task {task_id} to end", timeout)

    def wait(self, check, what: str, timeout: float = TASK_TIMEOUT):
        try:
            return wait_for(check, timeout, what, interval=0.5)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n--- make serve ---\n{tail(self.log, 6000)}") from None

    def run(self, run_id: str) -> dg.DagsterRun | None:
        with dg.DagsterInstance.from_config(str(self.home)) as instance:
            return instance.get_run_by_id(run_id)

    def leftovers(self) -> list[str]:
        """Temporary files of the upload store (none may outlive a request)."""
        return sorted(p.name for p in self.uploads.glob(".upload-*")) if self.uploads.exists() else []


@contextlib.contextmanager
def api_stack(root: Path, db_url: str, **settings: str) -> Iterator[Stack]:
    """Start ``python -m event_pipeline.api.serve``; yield once the API answers and the code location is loaded."""
    (root / "home").mkdir(parents=True, exist_ok=True)
    with smtp_server() as (mailbox, smtp_port):
        api_port, ui_port = free_port(), free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("EVENT_PIPELINE_", "AWS_", "DAGSTER_"))}
        env.update(
            DAGSTER_HOME=str(root / "home"),
            EVENT_PIPELINE_DATA_DIR=str(root / "data"),
            EVENT_PIPELINE_DROP_DIR=str(root / "drop"),
            EVENT_PIPELINE_DATABASE_URL=db_url,
            EVENT_PIPELINE_SENSOR_INTERVAL="1",
            EVENT_PIPELINE_SMTP_URL=f"smtp://127.0.0.1:{smtp_port}",
            EVENT_PIPELINE_NOTIFY_TO="ops@example.org",
            EVENT_PIPELINE_NOTIFY_FROM="imports@example.org",
            EVENT_PIPELINE_JWT_SECRET=SECRET,
            EVENT_PIPELINE_API_PORT=str(api_port),
            EVENT_PIPELINE_UI_PORT=str(ui_port),
            EVENT_PIPELINE_API_MAX_UPLOAD_BYTES=str(MAX_UPLOAD),
            EVENT_PIPELINE_API_MAX_ACTIVE=str(MAX_ACTIVE),
            NO_PROXY="127.0.0.1,localhost",
            **settings,
        )
        log = root / "serve.log"
        with process([str(BIN / "python"), "-m", "event_pipeline.api.serve"], env, log, cwd=root) as proc:
            stack = Stack(root, api_port, ui_port, db_url, mailbox, log, env)
            stack.wait(lambda: httpx.get(f"{stack.api}/openapi.json", timeout=5).status_code == 200, "the API", 90)

            def loaded():
                nodes = graphql(ui_port, LOADED, timeout=10)["repositoriesOrError"].get("nodes")
                return nodes and any(p["name"] == "import_archive" for p in nodes[0]["pipelines"])

            stack.wait(loaded, "the webserver to load the code location", 120)
            yield stack
            # Stopped by process(): SIGTERM to serve, which stops its children's process groups.
            assert proc.poll() is None, f"make serve ended during the tests\n{tail(log)}"
