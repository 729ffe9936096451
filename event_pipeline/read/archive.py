"""Reading an Open Event zip: find its JSON files and media, check every member, never extract.

Members are read in memory from the zip, so a hostile member name cannot
write anywhere; such names, symlinks and oversized members are reported as
errors (located by member name), within the bounds of :class:`Limits`. The
zip is read from a private copy made while hashing it (``private_copy.py``),
so the bytes read are the bytes the sha256 names.

:func:`read_archive` only lists and checks the members and returns an
:class:`~event_pipeline.read.data_files.Archive`: ``members`` (data file ->
member name), ``media`` (normalised path, see :func:`media_key` -> member
name) and the problems found. The JSON is parsed when the normaliser asks for
it (``data_files.py``).
"""

from __future__ import annotations

import stat
import unicodedata
import zipfile
from pathlib import Path

from event_pipeline.model.catalog import KNOWN_AUXILIARY_FILES, MODELS
from event_pipeline.problems import Problems
from event_pipeline.read.data_files import Archive
from event_pipeline.read.json_text import INVALID
from event_pipeline.read.limits import Limits
from event_pipeline.read.private_copy import ZIP_ERRORS, snapshot

DATA_FILES = {name for m in MODELS for name in m.files} | set(KNOWN_AUXILIARY_FILES)
IGNORED_NAMES = ("__MACOSX/", ".DS_Store", "Thumbs.db")


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
    """List and check the archive's members (JSON is parsed later, on demand); problems are collected,
    not raised. The file is copied and hashed in one pass (:func:`snapshot`) and read only from that
    copy; close the archive when done."""
    limits = limits or Limits.from_env()
    path = Path(path)
    problems = Problems(keep=limits.max_problems)
    try:
        copy, sha = snapshot(path)
    except OSError as exc:
        archive = Archive(path, "", problems=problems, limits=limits)
        archive.problems.error(path.name, f"cannot read archive: {exc.strerror or exc}")
        return archive
    archive = Archive(path, sha, problems=problems, limits=limits)
    try:
        archive._zip = zipfile.ZipFile(copy)
        _read_members(archive._zip, archive, limits)
    except ZIP_ERRORS as exc:
        archive.close()
        copy.close()
        archive.problems.error(path.name, f"not a readable zip archive: {exc}")
    return archive


def _read_members(zf: zipfile.ZipFile, archive: Archive, limits: Limits) -> None:
    problems = archive.problems
    every = zf.infolist()
    if len(every) > limits.max_members:  # ignored members too: each costs memory and time to list
        problems.error(archive.path.name, f"archive has {len(every)} members ({limits.hint('max_members')})")
        return
    infos = [i for i in every if not any(x in i.filename for x in IGNORED_NAMES)]
    total = sum(i.file_size for i in infos)
    if total > limits.max_total_bytes:
        problems.error(archive.path.name, f"archive inflates to {total} bytes ({limits.hint('max_total_bytes')})")
        return
    safe = _safe_members(infos, archive, limits)
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


def _safe_members(infos: list[zipfile.ZipInfo], archive: Archive, limits: Limits) -> list[zipfile.ZipInfo]:
    """The members that may be read; an error for each other one (empty or escaping name, symlink, too large,
    compressed too well), in the zip's order."""
    problems = archive.problems
    safe: list[zipfile.ZipInfo] = []
    for info in infos:
        if not info.filename:  # zipfile cuts a name at its first NUL: "\x00x" is ""
            problems.error(archive.path.name, "a member has an empty name (or one starting with NUL)")
        elif _unsafe(info.filename):
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
    return safe
