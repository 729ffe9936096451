"""Real processes for tests: the Dagster daemon and webserver, an SMTP server, a TCP proxy, polling.

Every process is started in its own process group and ended by that group's
id in teardown (SIGTERM, then SIGKILL after a timeout), so the code servers
and run workers a daemon spawns go with it.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(check: Callable[[], Any], timeout: float, what: str, interval: float = 0.5) -> Any:
    """Poll ``check`` until it returns something truthy; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = check()
        except Exception as exc:  # noqa: BLE001 - e.g. a table that does not exist yet
            last_error = exc
        else:
            if value:
                return value
        time.sleep(interval)
    raise AssertionError(
        f"timed out after {timeout:.0f} s waiting for {what}" + (f" ({last_error})" if last_error else "")
    )


@contextlib.contextmanager
def process(args: list[str], env: dict[str, str], log: Path, cwd: Path = REPO) -> Iterator[subprocess.Popen]:
    """Run ``args`` in a new process group; end the whole group afterwards."""
    with open(log, "ab") as out:
        proc = subprocess.Popen(args, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield proc
    finally:
        stop(proc)


def stop(proc: subprocess.Popen, timeout: float = 20) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=timeout)
    # Children (code server, run workers) may outlive the leader: end the group.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=5)


def tail(log: Path, chars: int = 4000) -> str:
    return log.read_text(errors="replace")[-chars:] if log.exists() else ""


def graphql(port: int, query: str, variables: dict | None = None, timeout: float = 30) -> dict:
    body = json.dumps({"query": query, "variables": variables or {}}).encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql", data=body, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        payload = json.load(response)
    if payload.get("errors"):
        raise AssertionError(f"GraphQL errors: {payload['errors']}")
    return payload["data"]


class Mailbox:
    """An aiosmtpd handler that keeps every message it receives."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.logins: list[tuple[str, str]] = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's hook name
        self.messages.append(message_from_bytes(envelope.original_content or envelope.content, policy=policy.default))
        return "250 OK"

    def authenticate(self, server, session, envelope, mechanism, auth_data):
        from aiosmtpd.smtp import AuthResult

        login = (auth_data.login.decode(), auth_data.password.decode())
        self.logins.append(login)
        return AuthResult(success=login == ("notifier", "s3cret-Pass"))

    def subjects(self) -> list[str]:
        return [m["Subject"] for m in self.messages]

    def find(self, subject: str) -> EmailMessage | None:
        return next((m for m in self.messages if m["Subject"] == subject), None)


@contextlib.contextmanager
def smtp_server(auth: bool = False) -> Iterator[tuple[Mailbox, int]]:
    """A real SMTP server on loopback (aiosmtpd); yields the mailbox and port."""
    from aiosmtpd.controller import Controller

    mailbox = Mailbox()
    port = free_port()
    kwargs: dict[str, Any] = {}
    if auth:
        kwargs = {"authenticator": mailbox.authenticate, "auth_require_tls": False, "auth_required": True}
    controller = Controller(mailbox, hostname="127.0.0.1", port=port, **kwargs)
    controller.start()
    try:
        yield mailbox, port
    finally:
        controller.stop()


class LoopbackProxy:
    """A TCP forwarder from a loopback port to ``upstream_port`` that can be cut and restored.

    Cut: the port refuses connections and the open ones are reset, as when a
    server goes away. Restored: the same port forwards again, to the same
    server, whose state survived (unlike a restarted in-memory server).
    """

    def __init__(self, upstream_port: int):
        self.upstream_port = upstream_port
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._lock = threading.Lock()
        self._open: list[socket.socket] = []
        self._listener: socket.socket | None = None
        self._timers: list[threading.Timer] = []
        self.restore()

    def restore_in(self, seconds: float) -> None:
        timer = threading.Timer(seconds, self.restore)
        self._timers.append(timer)
        timer.start()

    @property
    def is_cut(self) -> bool:
        return self._listener is None

    def close(self) -> None:
        for timer in self._timers:
            timer.cancel()
        self.cut()

    def restore(self) -> None:
        with self._lock:
            if self._listener is not None:
                return
            listener = socket.socket()
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind(("127.0.0.1", self.port))
            listener.listen(64)
            listener.settimeout(0.1)  # the accept loop notices a cut within this
            self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        with self._lock:
            listener, self._listener = self._listener, None
            connections, self._open = self._open, []
        if listener is not None:
            listener.close()
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # RST, not FIN
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()

    def _accept(self, listener: socket.socket) -> None:
        while self._listener is listener:
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            client.settimeout(None)
            try:
                server = socket.create_connection(("127.0.0.1", self.upstream_port))
            except OSError:
                client.close()
                continue
            with self._lock:
                if self._listener is not listener:  # cut meanwhile
                    client.close()
                    server.close()
                    return
                self._open += [client, server]
            for source, sink in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        """Copy one direction until either side ends; then end both (each pump closes the socket it reads)."""
        with contextlib.suppress(OSError):
            while data := source.recv(1 << 16):
                sink.sendall(data)
        for conn in (source, sink):
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        with self._lock:
            if source in self._open:
                self._open.remove(source)
        source.close()
