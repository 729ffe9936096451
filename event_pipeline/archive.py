"""Reading an Open Event zip: find its JSON files and media, parse, never extract.

Members are read in memory from the zip, so a hostile member name cannot
write anywhere; such names, symlinks and oversized members are reported as
errors together with every JSON syntax error (file, line and column).
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import unicodedata
import zipfile
import zlib
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
    documents: dict[str, Any] = field(default_factory=dict)  # data file -> parsed JSON
    members: dict[str, str] = field(default_factory=dict)  # data file -> member name
    media: dict[str, str] = field(default_factory=dict)  # normalised path -> member name
    problems: Problems = field(default_factory=Problems)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


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


def read_archive(path: str | Path, limits: Limits | None = None) -> Archive:
    """Parse every data file of the archive; problems are collected, not raised."""
    limits = limits or Limits.from_env()
    path = Path(path)
    try:
        sha = file_sha256(path)
    except OSError as exc:
        archive = Archive(path, "")
        archive.problems.error(path.name, f"cannot read archive: {exc.strerror or exc}")
        return archive
    archive = Archive(path, sha)
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
        archive.members[data_file] = info.filename
        if info.file_size > limits.max_json_bytes:
            problems.error(relative, f"JSON file of {info.file_size} bytes ({limits.hint('max_json_bytes')})")
            continue
        document = _parse_json(zf, info, relative, problems, limits)
        if document is not _INVALID:
            archive.documents[data_file] = document


_INVALID = object()


def _parse_json(zf: zipfile.ZipFile, info: zipfile.ZipInfo, name: str, problems: Problems, limits: Limits) -> Any:
    try:
        with zf.open(info) as fh:
            raw = fh.read(limits.max_json_bytes + 1)
    except ZIP_ERRORS as exc:
        problems.error(name, f"member cannot be read from the zip: {exc}")
        return _INVALID
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        problems.error(name, f"not valid UTF-8 at byte {exc.start}")
        return _INVALID
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        problems.error(name, f"invalid JSON: {exc.msg} at line {exc.lineno} column {exc.colno} (char {exc.pos})")
    except RecursionError:
        problems.error(name, "invalid JSON: nested too deeply")
    return _INVALID
