"""What every media storage backend shares: the object keys, the interface, the error, a test hook.

Both backends (``local_storage.py``, ``s3_storage.py``; the configured one comes
from ``backends.from_settings``) store objects under *keys* like
``db-0123456789abcdef/events/12/<sha256>.jpg`` (see ``prepare.py``): the
database's media namespace (``database_identity``), the event, and the sha256
of the bytes. They turn a key into the URL written to the database, and such a
URL back into its key. Only keys of that shape are accepted (:func:`checked_key`),
so a URL found in a database column can never make a backend touch anything
outside its own folder or prefix, nor another database's objects. Which type an
object is served as is ``served_types.py``.
"""

from __future__ import annotations

import os
import re
import signal
from collections.abc import Iterable
from typing import IO, Protocol
from urllib.parse import unquote

from event_pipeline import settings

# db-<namespace>/events/<event id>/<sha256>[.ext]: what this pipeline writes, nothing else.
NAMESPACE_PATTERN = re.compile(r"db-[0-9a-f]{16}")
KEY_PATTERN = re.compile(r"(db-[0-9a-f]{16})/events/([1-9]\d{0,18})/[0-9a-f]{64}(?:\.[a-z0-9]{1,10})?")

_kill_hits: dict[str, int] = {}


class StorageError(RuntimeError):
    """An object could not be written, listed or deleted."""


def kill_point(name: str) -> None:
    """A test hook: ``EVENT_PIPELINE_TEST_KILL_AT=<name>[:<n>]`` kills this process with SIGKILL the n-th
    time (default the first) it passes the point ``name`` (``media-put``: a local upload's temporary file
    is written, not yet renamed; ``media-stored``: every object is uploaded, nothing committed). Unset,
    as it always is outside tests, it does nothing."""
    spec = settings.current().test_kill_at
    if not spec:
        return
    point, _, nth = spec.partition(":")
    if point != name:
        return
    _kill_hits[name] = _kill_hits.get(name, 0) + 1
    if _kill_hits[name] >= int(nth or 1):
        os.kill(os.getpid(), signal.SIGKILL)


def valid_key(key: str) -> bool:
    """Whether ``key`` has the shape ``db-<namespace>/events/<event id>/<sha256>[.ext]``."""
    return KEY_PATTERN.fullmatch(key) is not None


def key_event(key: str) -> tuple[str, int] | None:
    """(namespace, event id) of a valid key, else None."""
    match = KEY_PATTERN.fullmatch(key)
    return (match[1], int(match[2])) if match else None


def event_prefix(namespace: str, event_id: int) -> str:
    """The folder of one event's objects in one database's namespace, ``db-<namespace>/events/<id>/``."""
    if not NAMESPACE_PATTERN.fullmatch(namespace):
        raise StorageError(f"unexpected media namespace {namespace!r}")
    return f"{namespace}/events/{event_id}/"


class Storage(Protocol):
    """A media store: objects by key (``list`` gives key -> size in bytes under a prefix; ``put`` writes
    ``size`` bytes whose sha256 is given; ``delete`` and ``remove_partial`` return how many went), the URL
    of each, and the key back from such a URL. Every failure is a StorageError."""

    kind: str

    def describe(self) -> str: ...
    def url(self, key: str) -> str: ...
    def key_for_url(self, url: str) -> str | None: ...
    def list(self, prefix: str) -> dict[str, int]: ...
    def put(self, key: str, data: IO[bytes], size: int, sha256: str, content_type: str | None) -> None: ...
    def delete(self, keys: Iterable[str]) -> int: ...
    def remove_partial(self, keys: Iterable[str]) -> int: ...
    def read(self, key: str) -> bytes: ...


def key_from_url(url: str, base: str) -> str | None:
    """The key of a URL under ``base`` (the backend's base URL), None if it is no valid key there."""
    if not url.startswith(base + "/"):
        return None
    key = unquote(url[len(base) + 1 :])
    return key if valid_key(key) else None


def checked_key(key: str) -> str:
    """``key`` itself if it has the shape of this pipeline's keys; StorageError otherwise."""
    if not valid_key(key):
        raise StorageError(f"refusing unexpected media key {key!r}")
    return key
