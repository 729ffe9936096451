"""Reading an Open Event zip: find its JSON files and media, parse, never extract.

Members are read in memory from the zip, so a hostile member name cannot
write anywhere; such names, symlinks and oversized members are reported as
errors together with every JSON syntax error (file, line and column).

:func:`read_archive` only lists and checks the members; the JSON is parsed
when the normaliser asks for it, and a file that is one array of records
(``sessions``, ``speakers``...) is parsed one record at a time, so the
parsed records of a large archive are never all in memory at once.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
import unicodedata
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from event_pipeline.catalog import KNOWN_AUXILIARY_FILES, MODELS
from event_pipeline.problems import Problems

DATA_FILES = {name for m in MODELS for name in m.files} | set(KNOWN_AUXILIARY_FILES)
# What zipfile raises on damaged, encrypted or unsupported archives and members.
ZIP_ERRORS = (
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    EOFError,
    OSError,
    NotImplementedError,
    RuntimeError,
    ValueError,
    zlib.error,
)
IGNORED_NAMES = ("__MACOSX/", ".DS_Store", "Thumbs.db")


@dataclass(frozen=True)
class Limits:
    """Bounds on what an archive may make us read; each is an env setting."""

    max_members: int = 20_000
    max_member_bytes: int = 1 << 30
    max_total_bytes: int = 4 << 30
    max_json_bytes: int = 256 << 20
    max_ratio: int = 200  # uncompressed / compressed, for members over 1 MiB

    @classmethod
    def from_env(cls) -> Limits:
        values = {}
        for name in cls.__dataclass_fields__:
            raw = os.environ.get(f"EVENT_PIPELINE_{name.upper()}")
            if raw:
                values[name] = int(raw)
        return cls(**values)

    def hint(self, name: str) -> str:
        return f"limit {name}={getattr(self, name)}; raise it with EVENT_PIPELINE_{name.upper()}"


@dataclass
class Archive:
    path: Path
    sha256: str
    members: dict[str, str] = field(default_factory=dict)  # data file -> member name
    media: dict[str, str] = field(default_factory=dict)  # normalised path -> member name
    problems: Problems = field(default_factory=Problems)
    limits: Limits = field(default_factory=Limits)
    _parsed: dict[str, Any] = field(default_factory=dict, repr=False)  # whole documents read so far

    def document(self, name: str) -> Any:
        """A data file parsed as a whole (kept: the event and meta are read more than once), or None if it
        is missing or invalid (the problem is recorded; see :meth:`parsed`)."""
        if name not in self._parsed:
            text = self._text(name)
            self._parsed[name] = INVALID if text is None else self._loads(name, text)
        document = self._parsed[name]
        return None if document is INVALID or document is _STREAMED else document

    def parsed(self, name: str) -> bool:
        """Whether the archive has this data file and it is valid JSON (as far as read)."""
        return name in self.members and self._parsed.get(name) is not INVALID

    def records(self, name: str) -> Iterator[Any] | Any:
        """A data file that is a JSON array: its elements one by one, each dropped once the caller is done
        with it. Anything else: the whole document, as :meth:`document`."""
        if name in self._parsed:
            return self.document(name)
        text = self._text(name)
        if text is None:
            self._parsed[name] = INVALID
            return None
        start = _WHITESPACE.match(text).end()
        if not text.startswith("[", start):
            self._parsed[name] = self._loads(name, text)
            return self._parsed[name]
        self._parsed[name] = _STREAMED
        return self._stream(name, text, start)

    def check_unread(self) -> None:
        """Parse the data files nobody asked for, so their syntax errors are reported too."""
        for name in self.members:
            if name not in self._parsed:
                self.document(name)
                self._parsed[name] = _STREAMED  # checked; not worth keeping

    def label(self, name: str) -> str:
        """How problems name a data file: as the archive does (``sessions`` or ``sessions.json``)."""
        return self.members.get(name, name).rsplit("/", 1)[-1]

    def _text(self, name: str) -> str | None:
        member = self.members.get(name)
        if member is None:
            return None
        name = self.label(name)
        try:
            with zipfile.ZipFile(self.path) as zf, zf.open(member) as fh:
                raw = fh.read(self.limits.max_json_bytes + 1)
        except ZIP_ERRORS as exc:
            self.problems.error(name, f"member cannot be read from the zip: {exc}")
            return None
        try:
            return raw.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            self.problems.error(name, f"not valid UTF-8 at byte {exc.start}")
            return None

    def _loads(self, name: str, text: str) -> Any:
        try:
            return json.loads(text)
        except (json.JSONDecodeError, RecursionError) as exc:
            self._json_error(name, exc)
        return INVALID

    def _stream(self, name: str, text: str, start: int) -> Iterator[Any]:
        try:
            yield from _array_elements(text, start)
        except (json.JSONDecodeError, RecursionError) as exc:
            self._parsed[name] = INVALID
            self._json_error(name, exc)

    def _json_error(self, data_file: str, exc: Exception) -> None:
        if isinstance(exc, json.JSONDecodeError):
            message = f"invalid JSON: {exc.msg} at line {exc.lineno} column {exc.colno} (char {exc.pos})"
        else:
            message = "invalid JSON: nested too deeply"
        self.problems.error(self.label(data_file), message)


INVALID = object()  # unreadable or not JSON: the problem is recorded
_STREAMED = object()  # read once, as a stream: not kept
_WHITESPACE = re.compile(r"[ \t\n\r]*")
_DECODER = json.JSONDecoder()


def _array_elements(text: str, start: int) -> Iterator[Any]:
    """The elements of the JSON array at ``text[start]``, one at a time, with the errors (and positions)
    ``json.loads`` would report."""
    index = _WHITESPACE.match(text, start + 1).end()
    if text.startswith("]", index):
        index += 1
    else:
        while True:
            value, index = _DECODER.raw_decode(text, index)
            yield value
            index = _WHITESPACE.match(text, index).end()
            if text.startswith(",", index):
                index = _WHITESPACE.match(text, index + 1).end()
            elif text.startswith("]", index):
                index += 1
                break
            else:
                raise json.JSONDecodeError("Expecting ',' delimiter", text, index)
    end = _WHITESPACE.match(text, index).end()
    if end != len(text):
        raise json.JSONDecodeError("Extra data", text, end)


def file_sha256(path: Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def media_key(path: str) -> str:
    """How a media path is matched: no leading slash, NFC, forward slashes."""
    return unicodedata.normalize("NFC", path.replace("\\", "/").lstrip("/"))


def _unsafe(name: str) -> bool:
    parts = name.replace("\\", "/").split("/")
    return name.startswith(("/", "\\")) or ".." in parts or (len(name) > 1 and name[1] == ":")


def _is_symlink(info: zipfile.ZipInfo) -> bool:
    return stat.S_ISLNK(info.external_attr >> 16)


def _common_prefix(names: list[str]) -> str:
    """The single top folder holding everything, if the data files are not at the root."""
    if any("/" not in n for n in names if not n.endswith("/")):
        return ""
    tops = {n.split("/", 1)[0] for n in names}
    if len(tops) == 1:
        return tops.pop() + "/"
    return ""


def _data_file_name(relative: str) -> str | None:
    stem = relative[:-5] if relative.lower().endswith(".json") else relative
    return stem if stem in DATA_FILES else None


def read_archive(path: str | Path, limits: Limits | None = None, *, sha256: str | None = None) -> Archive:
    """List and check the archive's members (JSON is parsed later, on demand); problems are collected,
    not raised. ``sha256``: the file's hash when the caller has just computed it."""
    limits = limits or Limits.from_env()
    path = Path(path)
    try:
        sha = sha256 or file_sha256(path)
    except OSError as exc:
        archive = Archive(path, "")
        archive.problems.error(path.name, f"cannot read archive: {exc.strerror or exc}")
        return archive
    archive = Archive(path, sha, limits=limits)
    try:
        with zipfile.ZipFile(path) as zf:
            _read_members(zf, archive, limits)
    except ZIP_ERRORS as exc:
        archive.problems.error(path.name, f"not a readable zip archive: {exc}")
    return archive


def _read_members(zf: zipfile.ZipFile, archive: Archive, limits: Limits) -> None:
    problems = archive.problems
    infos = [i for i in zf.infolist() if not any(x in i.filename for x in IGNORED_NAMES)]
    if len(infos) > limits.max_members:
        problems.error(archive.path.name, f"archive has {len(infos)} members ({limits.hint('max_members')})")
        return
    total = sum(i.file_size for i in infos)
    if total > limits.max_total_bytes:
        problems.error(archive.path.name, f"archive inflates to {total} bytes ({limits.hint('max_total_bytes')})")
        return
    safe: list[zipfile.ZipInfo] = []
    for info in infos:
        if _unsafe(info.filename):
            problems.error(info.filename, "member path escapes the archive (absolute or '..')")
        elif _is_symlink(info):
            problems.error(info.filename, "member is a symbolic link")
        elif info.file_size > limits.max_member_bytes:
            problems.error(
                info.filename, f"member inflates to {info.file_size} bytes ({limits.hint('max_member_bytes')})"
            )
        elif info.file_size > 1 << 20 and info.file_size > limits.max_ratio * max(info.compress_size, 1):
            problems.error(info.filename, f"compression ratio above {limits.max_ratio} ({limits.hint('max_ratio')})")
        else:
            safe.append(info)
    prefix = _common_prefix([i.filename for i in safe])
    for info in safe:
        if info.is_dir():
            continue
        relative = info.filename[len(prefix) :]
        data_file = _data_file_name(relative) if "/" not in relative else None
        if data_file is None:
            if "/" in relative:
                archive.media[media_key(relative)] = info.filename
            elif relative.lower().endswith(".zip"):
                problems.warn(relative, "nested zip archive ignored")
            else:
                problems.warn(relative, "file not part of the Open Event format; ignored")
            continue
        if data_file in archive.members:
            problems.error(relative, f"duplicate data file (also {archive.members[data_file]!r})")
            continue
        if info.file_size > limits.max_json_bytes:
            problems.error(relative, f"JSON file of {info.file_size} bytes ({limits.hint('max_json_bytes')})")
            archive._parsed[data_file] = INVALID
        archive.members[data_file] = info.filename
