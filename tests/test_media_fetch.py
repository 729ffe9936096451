"""URLs in archives: never requested unless the host is listed, then fetched within limits (no SSRF).

A real HTTP server on loopback records every request it receives.
"""

from __future__ import annotations

import http.server
import io
import threading
from pathlib import Path

import pytest
from archives import write_zip
from conftest import import_archive
from media_archives import (
    blob,
    column_value,
    get,
    media_event,
    sha,
)

from event_pipeline.media import fetch as fetch_module

# ---------------------------------------------------------------------------
# No server-side request forgery


class Recorder:
    """A loopback HTTP server that records every request and serves fixed bytes."""

    def __init__(self, routes: dict[str, tuple[int, dict[str, str], bytes]] | None = None):
        self.requests: list[str] = []
        self.routes = routes or {}
        recorder = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                recorder.requests.append(self.path)
                status, headers, body = recorder.routes.get(self.path, (200, {}, b"served"))
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def recorder():
    servers: list[Recorder] = []

    def make(routes=None) -> Recorder:
        servers.append(Recorder(routes))
        return servers[-1]

    yield make
    for server in servers:
        server.close()


def _url_archive(tmp_path: Path, urls: dict[str, str]) -> Path:
    files = media_event()
    files["speakers"][0]["photo-url"] = urls["photo"]
    files["sponsors"][0]["logo-url"] = urls["logo"]
    files["sessions"][0]["slides-url"] = urls["slides"]
    return write_zip(tmp_path / "conf.zip", files)


@pytest.mark.parametrize(
    "allowed", ["", "127.0.0.1:{port}, localhost:{port}", "127.0.0.1:{port} localhost:{port} [::1]:{port}"]
)
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("backend", ["local"], indirect=True)
def test_archive_urls_are_never_requested_from_loopback(db_url, backend, tmp_path, monkeypatch, recorder, allowed):
    server = recorder()
    monkeypatch.setenv("EVENT_PIPELINE_MEDIA_FETCH_HOSTS", allowed.format(port=server.port))
    urls = {
        "photo": server.url("/photo.jpg"),
        "logo": server.url("/logo.png", host="localhost"),
        "slides": f"http://[::1]:{server.port}/slides.pdf",
    }
    code, result = import_archive(_url_archive(tmp_path, urls), db_url)
    assert code == 0, result
    assert server.requests == []  # not one request reached the loopback server
    assert column_value(db_url, "speakers", "1", "photo_url")[1] == urls["photo"]
    assert column_value(db_url, "sponsors", "1", "logo_url")[1] == urls["logo"]
    assert column_value(db_url, "sessions", "1", "slides_url")[1] == urls["slides"]
    assert result["media"]["fetched"] == 0
    if allowed:
        refused = [w for w in result["warnings"] if "non-public address" in w["message"]]
        assert {w["field"] for w in refused} >= {"photo_url", "logo_url"}
    else:
        assert result["media"]["kept_urls"] == 3


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_listed_host_is_fetched_with_limits(db_url, backend, tmp_path, monkeypatch, recorder):
    """With the address check relaxed for loopback only (the test's stand-in for a public host)."""
    other = recorder()
    photo = blob("remote photo", 4000)
    server = recorder(
        {
            "/photo.jpg": (200, {"Content-Type": "image/jpeg"}, photo),
            "/moved.png": (302, {"Location": "/photo.jpg"}, b""),
            "/away.pdf": (302, {"Location": other.url("/slides.pdf", host="localhost")}, b""),
        }
    )
    monkeypatch.setattr(fetch_module, "blocked_address", lambda address: address != "127.0.0.1")
    monkeypatch.setenv("EVENT_PIPELINE_MEDIA_FETCH_HOSTS", f"127.0.0.1:{server.port}")
    urls = {"photo": server.url("/photo.jpg"), "logo": server.url("/moved.png"), "slides": server.url("/away.pdf")}
    code, result = import_archive(_url_archive(tmp_path, urls), db_url)
    assert code == 0, result
    _, photo_url, extra = column_value(db_url, "speakers", "1", "photo_url")
    assert get(photo_url) == photo and extra["archive_paths"]["photo_url"] == urls["photo"]
    assert backend.key_of(photo_url).endswith(f"/{sha(photo)}.jpg")
    assert get(column_value(db_url, "sponsors", "1", "logo_url")[1]) == photo  # same-host redirect followed
    assert column_value(db_url, "sessions", "1", "slides_url")[1] == urls["slides"]  # other host: kept
    assert other.requests == []
    assert [w for w in result["warnings"] if "redirected to another host" in w["message"]]
    assert result["media"]["fetched"] == 2
    assert sorted(server.requests) == sorted(["/photo.jpg", "/moved.png", "/photo.jpg", "/away.pdf"])


def test_fetch_policy_and_limits(recorder, monkeypatch):
    policy = fetch_module.FetchPolicy(frozenset({"media.example.org", "cdn.example.org:8443"}))
    assert policy.allows("https://media.example.org/a.jpg")
    assert policy.allows("http://MEDIA.example.org./a.jpg")
    assert not policy.allows("https://media.example.org:8080/a.jpg")  # other port
    assert policy.allows("https://cdn.example.org:8443/a.jpg")
    assert not policy.allows("https://cdn.example.org/a.jpg")
    assert not policy.allows("ftp://media.example.org/a.jpg")
    assert not policy.allows("https://user:pw@media.example.org/a.jpg")
    assert not policy.allows("https://evil.example.org/a.jpg")
    assert not policy.allows("file:///etc/passwd")
    for address in ("127.0.0.1", "10.1.2.3", "192.168.0.1", "172.16.0.1", "169.254.169.254", "::1", "fe80::1",
                    "::ffff:127.0.0.1", "0.0.0.0", "100.64.0.1", "224.0.0.1", "fc00::1"):  # fmt: skip
        assert fetch_module.blocked_address(address), address
    assert not fetch_module.blocked_address("93.184.216.34")
    assert not fetch_module.blocked_address("2606:2800:220:1:248:1893:25c8:1946")

    big = recorder({"/big.bin": (200, {}, b"x" * 5000)})
    monkeypatch.setattr(fetch_module, "blocked_address", lambda address: address != "127.0.0.1")
    small = fetch_module.FetchPolicy(frozenset({f"127.0.0.1:{big.port}"}), max_bytes=1000)
    with pytest.raises(fetch_module.FetchError, match="limit of 1000"):
        fetch_module.fetch(big.url("/big.bin"), small, io.BytesIO())


def test_fetch_gives_up_after_the_time_limit(monkeypatch):
    import socket
    import time

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]

    def trickle():
        conn, _ = listener.accept()
        conn.recv(1000)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n")
        try:
            for _ in range(100):
                conn.sendall(b"x")
                time.sleep(0.1)
        except OSError:
            pass
        conn.close()

    thread = threading.Thread(target=trickle, daemon=True)
    thread.start()
    monkeypatch.setattr(fetch_module, "blocked_address", lambda address: address != "127.0.0.1")
    policy = fetch_module.FetchPolicy(frozenset({f"127.0.0.1:{port}"}), timeout=1.0)
    started = time.monotonic()
    with pytest.raises(fetch_module.FetchError, match="timed out|timeout"):
        fetch_module.fetch(f"http://127.0.0.1:{port}/slow", policy, io.BytesIO())
    assert time.monotonic() - started < 5
    listener.close()
