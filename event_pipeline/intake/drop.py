"""The drop folder: which archives are new or changed, as plain data the sensor turns into runs.

A local folder is scanned with one ``stat`` per file. A file is hashed only
once its size and mtime are the same on two consecutive scans (so a file
still being copied is left alone), and only once per change: a folder of
thousands of archives costs a directory listing per tick, not thousands of
hashes. Hashing is also bounded per scan; what is left waits for the next tick.

An S3 prefix is listed instead; an object appears only once its upload is
complete, and its ETag marks a change, so nothing is downloaded to decide.

For each key (file name without ``.zip``) the last hash (or ETag) submitted
and how many times one was are kept: the same bytes dropped again are not
re-submitted, and bytes that come back after a change (A, B, A) are.

Where this is kept: Dagster stores a sensor's cursor with every tick (and
keeps skipped ticks for a week), so the per-file memory lives in a state file
under the data folder (:class:`State`) and the cursor (:class:`Cursor`) only
holds what the last tick requested. A submission becomes part of the state
only once the next tick sees that cursor, i.e. once Dagster committed the
tick with its runs; a tick that failed is planned again, and Dagster's run
keys keep anything that did start from starting twice.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from event_pipeline import settings
from event_pipeline.intake import keys, s3
from event_pipeline.read.private_copy import file_sha256

STATE_VERSION = 1
CURSOR_VERSION = 2
HASH_BUDGET_SECONDS = 20.0  # a sensor tick must end well within Dagster's 60 s


def drop_dir() -> Path:
    """``EVENT_PIPELINE_DROP_DIR`` (default ``./drop``), created if missing."""
    path = settings.current().drop_dir.expanduser().resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


def drop_url() -> str | None:
    """``EVENT_PIPELINE_DROP_URL`` (``s3://bucket/prefix``), which replaces the folder when set."""
    return settings.current().drop_url


def archive_key(name: str) -> str | None:
    """The archive key for a file name (:mod:`event_pipeline.intake.keys`), or None if the file is not one we take."""
    return None if ignore_reason(name) else keys.key_from_name(name)


def ignore_reason(name: str) -> str | None:
    """Why a file in the drop folder is not imported (None: it is)."""
    if not keys.is_archive_name(name):
        return "not a .zip archive"
    if name.startswith("."):
        return "a hidden file (an upload in progress?)"
    error = keys.key_error(keys.key_from_name(name))
    return f"its name gives no valid key: {error}" if error else None


@dataclass
class Request:
    """One archive to import: the sensor makes a partition and a run of it."""

    key: str
    path: str  # local path or s3:// URL, for the run config
    marker: str  # sha256, or the S3 ETag
    generation: int  # how many times this key was submitted, this one included

    @property
    def run_key(self) -> str:
        return f"{self.key}:{self.marker}:{self.generation}"


def _load_json(raw: str | None, version: int) -> dict[str, Any]:
    try:
        data = json.loads(raw) if raw else {}
    except ValueError:
        return {}
    return data if isinstance(data, dict) and data.get("v") == version else {}


@dataclass
class State:
    """What the sensor knows between ticks, in a file of the data folder (losing it costs re-hashing)."""

    files: dict[str, list] = field(default_factory=dict)  # name -> [size, mtime_ns, sha256 or None]
    sent: dict[str, list] = field(default_factory=dict)  # key -> [marker, generation], once committed
    ignored: list[str] = field(default_factory=list)  # non-archives already logged
    loaded: str = ""  # the file's text when read, to write only what changed

    @classmethod
    def load(cls, path: Path) -> State:
        try:
            raw = path.read_text()
        except OSError:
            return cls()
        data = _load_json(raw, STATE_VERSION)
        return cls(data.get("files", {}), data.get("sent", {}), data.get("ignored", []), raw if data else "")

    def dump(self) -> str:
        payload = {"v": STATE_VERSION, "files": self.files, "sent": self.sent, "ignored": sorted(self.ignored)}
        return json.dumps(payload, separators=(",", ":"), sort_keys=True)

    def save(self, path: Path) -> None:
        """Write atomically, and only if something changed."""
        text = self.dump()
        if text == self.loaded:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temp = tempfile.mkstemp(dir=path.parent, prefix=".state-")
        with os.fdopen(handle, "w") as out:
            out.write(text)
        os.replace(temp, path)
        self.loaded = text

    def plan(self, key: str, path: str, marker: str) -> Request | None:
        """A request unless this key's last submission had the same marker."""
        last = self.sent.get(key)
        if last and last[0] == marker:
            return None
        return Request(key, path, marker, (last[1] if last else 0) + 1)

    def confirm(self, cursor: Cursor) -> None:
        """The previous tick's requests were committed with its cursor: remember them as sent."""
        for key, marker, generation in cursor.inflight:
            last = self.sent.get(key)
            if not last or last[1] <= generation:
                self.sent[key] = [marker, generation]


@dataclass
class Cursor:
    """The Dagster cursor: only what the last tick requested, so every tick's copy stays small."""

    inflight: list[list] = field(default_factory=list)  # [key, marker, generation]

    @classmethod
    def load(cls, raw: str | None) -> Cursor:
        return cls(_load_json(raw, CURSOR_VERSION).get("inflight", []))

    def dump(self) -> str:
        return json.dumps({"v": CURSOR_VERSION, "inflight": self.inflight}, separators=(",", ":"))


def state_path(source: str, data_dir: Path | None = None) -> Path:
    """One state file per watched folder or prefix."""
    digest = hashlib.sha256(source.encode()).hexdigest()[:16]
    return (data_dir or settings.data_dir()) / "drop-state" / f"{digest}.json"


@dataclass
class Scan:
    requests: list[Request] = field(default_factory=list)
    ignored: list[tuple[str, str]] = field(default_factory=list)  # newly seen (name, why not), to log once
    waiting: list[str] = field(default_factory=list)  # archives not yet stable, or not hashed yet

    @property
    def cursor(self) -> Cursor:
        """The cursor to commit with these requests."""
        return Cursor([[r.key, r.marker, r.generation] for r in self.requests])


def _note_ignored(state: State, scan: Scan, name: str, reason: str) -> None:
    if name not in state.ignored:
        state.ignored.append(name)
        scan.ignored.append((name, reason))


def scan_folder(
    folder: Path, state: State, *, budget_seconds: float = HASH_BUDGET_SECONDS, clock=time.monotonic
) -> Scan:
    """Compare the folder with the state; hash what has been stable since the last scan."""
    scan = Scan()
    seen: dict[str, os.stat_result] = {}
    present: set[str] = set()
    with os.scandir(folder) as entries:
        for entry in entries:
            if not entry.is_file(follow_symlinks=True):
                continue
            present.add(entry.name)
            reason = ignore_reason(entry.name)
            if reason:
                _note_ignored(state, scan, entry.name, reason)
                continue
            try:
                seen[entry.name] = entry.stat(follow_symlinks=True)
            except FileNotFoundError:  # removed since the listing
                continue
    state.ignored = [name for name in state.ignored if name in present]
    state.files = {name: facts for name, facts in state.files.items() if name in seen}

    deadline = clock() + budget_seconds
    # Oldest first: the files that have waited longest get hashed first.
    for name, stat in sorted(seen.items(), key=lambda item: (item[1].st_mtime_ns, item[0])):
        size, mtime = stat.st_size, stat.st_mtime_ns
        path = folder / name
        previous = state.files.get(name)
        if previous is None or previous[0] != size or previous[1] != mtime:
            state.files[name] = [size, mtime, None]  # new or still changing: look again next tick
            scan.waiting.append(name)
            continue
        sha256 = previous[2]
        if sha256 is None:
            if clock() > deadline:
                scan.waiting.append(name)
                continue
            try:
                sha256 = file_sha256(path)
                after = path.stat()
            except FileNotFoundError:  # removed while we looked: forget it
                state.files.pop(name, None)
                continue
            if (after.st_size, after.st_mtime_ns) != (size, mtime):
                state.files[name] = [after.st_size, after.st_mtime_ns, None]  # changed while hashing
                scan.waiting.append(name)
                continue
            state.files[name] = [size, mtime, sha256]
        # Compared on every scan (a dict lookup), so a tick that was never committed is planned again.
        request = state.plan(keys.key_from_name(name), str(path), sha256)
        if request:
            scan.requests.append(request)
    return scan


def scan_s3(url: str, state: State, s3_client=None) -> Scan:
    """List the prefix; an archive whose ETag differs from the last one submitted is a request."""
    scan = Scan()
    present: set[str] = set()
    for obj in s3.list_archives(url, s3_client):
        name = obj.key.rsplit("/", 1)[-1]
        present.add(name)
        reason = ignore_reason(name)
        if reason:
            _note_ignored(state, scan, name, reason)
            continue
        request = state.plan(keys.key_from_name(name), obj.url, obj.etag)
        if request:
            scan.requests.append(request)
    state.ignored = [name for name in state.ignored if name in present]
    return scan


def evaluate(raw_cursor: str | None) -> Scan:
    """One sensor tick: the watched folder or prefix (from the environment) against what is known."""
    url = drop_url()
    source = url or str(drop_dir())
    path = state_path(source)
    state = State.load(path)
    state.confirm(Cursor.load(raw_cursor))
    scan = scan_s3(url, state) if url else scan_folder(Path(source), state)
    state.save(path)
    return scan
