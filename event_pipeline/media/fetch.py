"""Fetching media that an archive gives as an http(s) URL: off unless the host is listed.

An archive is untrusted input, and a URL in it must not make the importer
request anything on the importer's network (server-side request forgery). So
by default such a URL is kept as the column's value and never requested.
``EVENT_PIPELINE_MEDIA_FETCH_HOSTS`` (comma or space separated; ``host`` for
the default port, ``host:port`` otherwise) turns fetching on for those hosts
only, and then:

- only ``http`` and ``https``, no user name or password in the URL;
- the host name is resolved once and every address it resolves to must be a
  public one (no private, loopback, link-local, multicast, reserved or
  unspecified addresses, IPv4-mapped ones included); the connection goes to
  that checked address, so a second DNS answer cannot swap it (rebinding);
- redirects are followed only to the same host and port (never to another
  host, never from https to http), at most ``MAX_REDIRECTS``;
- ``EVENT_PIPELINE_MEDIA_FETCH_MAX_BYTES`` (default 100 MiB) and
  ``EVENT_PIPELINE_MEDIA_FETCH_TIMEOUT`` seconds for the whole transfer
  (default 30); environment proxies are not used.
"""

from __future__ import annotations

import http.client
import ipaddress
import re
import socket
import ssl
import time
from dataclasses import dataclass
from typing import IO
from urllib.parse import SplitResult, urljoin, urlsplit

from event_pipeline import settings

FETCH_HOSTS_ENV = "EVENT_PIPELINE_MEDIA_FETCH_HOSTS"
MAX_REDIRECTS = 3
DEFAULT_PORTS = {"http": 80, "https": 443}
USER_AGENT = "event-pipeline media import"

_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


class FetchError(RuntimeError):
    """The URL was not fetched: refused by the policy, or the transfer failed."""


def is_url(value: str) -> bool:
    """Whether an archive value is a URL (``scheme://...``) rather than a path inside the archive."""
    return "://" in value and _URL.match(value.strip()) is not None


def _host(name: str) -> str:
    name = name.strip().lower().rstrip(".")
    try:
        return name.encode("idna").decode("ascii")
    except UnicodeError:
        return name


def _entry(text: str) -> str:
    text = text.strip().lower()
    if text.startswith("["):  # [v6]:port
        host, _, port = text[1:].partition("]")
        return f"[{host}]{port}"
    host, sep, port = text.rpartition(":") if text.count(":") == 1 else (text, "", "")
    return f"{_host(host)}{sep}{port}"


def blocked_address(address: str) -> bool:
    """True for any address that is not a public unicast one."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return (
        not ip.is_global
        or ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
    )


@dataclass(frozen=True)
class FetchPolicy:
    hosts: frozenset[str] = frozenset()  # "host" (default port) or "host:port"
    max_bytes: int = 100 << 20
    timeout: float = 30.0

    @classmethod
    def from_env(cls) -> FetchPolicy:
        """The policy the settings give (``EVENT_PIPELINE_MEDIA_FETCH_*``)."""
        configured = settings.current()
        hosts = frozenset(_entry(h) for h in re.split(r"[,\s]+", configured.media_fetch_hosts) if h.strip())
        return cls(hosts=hosts, max_bytes=configured.media_fetch_max_bytes, timeout=configured.media_fetch_timeout)

    def allows(self, url: str) -> bool:
        """Whether this URL may be fetched at all (before any name resolution)."""
        if not self.hosts:
            return False
        try:
            parts = urlsplit(url.strip())
            port = parts.port
        except ValueError:
            return False
        if parts.scheme.lower() not in DEFAULT_PORTS or not parts.hostname or parts.username or parts.password:
            return False
        host = _host(parts.hostname)
        host_entry = f"[{host}]" if ":" in host else host
        port = port or DEFAULT_PORTS[parts.scheme.lower()]
        if f"{host_entry}:{port}" in self.hosts:
            return True
        return host_entry in self.hosts and port == DEFAULT_PORTS[parts.scheme.lower()]


def resolve(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to (one lookup)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise FetchError(f"cannot resolve {host}: {exc}") from exc
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class _PinnedHTTP(http.client.HTTPConnection):
    def __init__(self, host: str, port: int, address: str, timeout: float):
        super().__init__(host, port, timeout=timeout)
        self._address = address

    def connect(self) -> None:
        self.sock = self.pinned = socket.create_connection((self._address, self.port), self.timeout)


class _PinnedHTTPS(http.client.HTTPSConnection):
    def __init__(self, host: str, port: int, address: str, timeout: float):
        self._tls = ssl.create_default_context()
        super().__init__(host, port, timeout=timeout, context=self._tls)
        self._address = address

    def connect(self) -> None:
        sock = socket.create_connection((self._address, self.port), self.timeout)
        # The certificate must name the host, whichever address we connected to.
        self.sock = self.pinned = self._tls.wrap_socket(sock, server_hostname=self.host)


def fetch(url: str, policy: FetchPolicy, sink: IO[bytes]) -> str | None:
    """Download ``url`` into ``sink`` under ``policy``; returns the content type. FetchError otherwise."""
    if not policy.allows(url):
        raise FetchError(f"{url}: host not in {FETCH_HOSTS_ENV}")
    deadline = time.monotonic() + policy.timeout
    first = urlsplit(url.strip())
    origin = (_host(first.hostname or ""), first.port or DEFAULT_PORTS[first.scheme.lower()])
    current = url.strip()
    for _hop in range(MAX_REDIRECTS + 1):
        parts = urlsplit(current)
        scheme, host, port, address = _checked_hop(url, first.scheme.lower(), origin, current, parts)
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise FetchError(f"{url}: timed out after {policy.timeout:g} s")
        connection_type = _PinnedHTTPS if scheme == "https" else _PinnedHTTP
        conn = connection_type(host, port, address, timeout=remaining)
        try:
            path = parts.path or "/"
            if parts.query:
                path += "?" + parts.query
            conn.request("GET", path, headers={"User-Agent": USER_AGENT, "Accept-Encoding": "identity"})
            response = conn.getresponse()
            if response.status in (301, 302, 303, 307, 308):
                location = response.getheader("Location")
                if not location:
                    raise FetchError(f"{url}: redirect without a Location")
                current = urljoin(current, location)
                continue
            return _body(url, conn, response, policy, deadline, sink)
        except (OSError, http.client.HTTPException) as exc:
            raise FetchError(f"{url}: {type(exc).__name__}: {exc}") from exc
        finally:
            conn.close()
    raise FetchError(f"{url}: more than {MAX_REDIRECTS} redirects")


def _checked_hop(
    url: str, first_scheme: str, origin: tuple[str, int], current: str, parts: SplitResult
) -> tuple[str, str, int, str]:
    """One hop (``current``, the first or a redirect's target) checked against the policy's rules:
    (scheme, host, port, the public address to connect to). FetchError if it is refused."""
    scheme = parts.scheme.lower()
    host, port = _host(parts.hostname or ""), parts.port or DEFAULT_PORTS.get(scheme, 0)
    if (host, port) != origin or scheme not in DEFAULT_PORTS or parts.username or parts.password:
        raise FetchError(f"{url}: redirected to another host ({current}); not followed")
    if scheme == "http" and first_scheme == "https":
        raise FetchError(f"{url}: redirected from https to http; not followed")
    addresses = resolve(host, port)
    bad = [a for a in addresses if blocked_address(a)]
    if bad or not addresses:
        raise FetchError(f"{url}: {host} resolves to a non-public address ({', '.join(bad) or 'none'}); refused")
    return scheme, host, port, addresses[0]


def _body(
    url: str,
    conn: _PinnedHTTP | _PinnedHTTPS,
    response: http.client.HTTPResponse,
    policy: FetchPolicy,
    deadline: float,
    sink: IO[bytes],
) -> str | None:
    """A final response's body into ``sink``, within the policy's size and the transfer's deadline;
    returns its declared content type (None if none). FetchError otherwise."""
    if response.status != 200:
        raise FetchError(f"{url}: HTTP {response.status} {response.reason}")
    length = response.getheader("Content-Length")
    if length and length.isdigit() and int(length) > policy.max_bytes:
        raise FetchError(f"{url}: {length} bytes, above the limit of {policy.max_bytes}")
    total = 0
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise FetchError(f"{url}: timed out after {policy.timeout:g} s")
        conn.pinned.settimeout(remaining)  # a server trickling bytes cannot stretch the limit
        chunk = response.read1(1 << 16)
        if not chunk:
            break
        total += len(chunk)
        if total > policy.max_bytes:
            raise FetchError(f"{url}: more than the limit of {policy.max_bytes} bytes")
        sink.write(chunk)
    return (response.getheader("Content-Type") or "").split(";")[0].strip() or None
