"""Reading an Open Event zip: find its JSON files and media, parse, never extract.

Members are read in memory from the zip, so a hostile member name cannot
write anywhere; such names, symlinks and oversized members are reported as
errors together with every JSON syntax error (file, line and column). The
zip is read from a private copy made while hashing it (:func:`snapshot`),
so the bytes read are the bytes the sha256 names.

What the parser reads but no database stores (``NaN``, ``Infinity``, a float
literal beyond a double, an integer literal too long for ``int()``) and
values nested deeper than ``max_json_depth`` are reported here, located by
file, record id and field, and removed before the normaliser sees them.

:func:`read_archive` only lists and checks the members; the JSON is parsed
when the normaliser asks for it, and a file that is one array of records
(``sessions``, ``speakers``...) is parsed one record at a time, so the
parsed records of a large archive are never all in memory at once.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import re
import stat
import tempfile
import unicodedata
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from event_pipeline import settings
from event_pipeline.model.catalog import KNOWN_AUXILIARY_FILES, MODELS
from event_pipeline.problems import DEFAULT_KEEP, Problems
from event_pipeline.read.storable import NotStorable

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
    """Bounds on what an archive may make us read and report; each is an env setting
    (``EVENT_PIPELINE_<NAME>``, e.g. ``EVENT_PIPELINE_MAX_MEMBERS``)."""

    max_members: int = 20_000  # every member, ignored ones (__MACOSX/...) included
    max_member_bytes: int = 1 << 30
    max_total_bytes: int = 4 << 30
    max_json_bytes: int = 256 << 20
    max_ratio: int = 200  # uncompressed / compressed, for members over 1 MiB
    max_json_depth: int = 64  # arrays and objects nested in a data file, counted from its top level
    max_problems: int = DEFAULT_KEEP  # problems of each severity kept (and stored in import_jobs); all are counted
    max_problems_listed: int = 50  # problems of each severity in a result line; the rest are counted by kind

    def __post_init__(self) -> None:
        # Python's parser, pickling and the JSON encoder recurse once per level: past a few hundred
        # levels they raise RecursionError, so the setting cannot go beyond what they survive.
        object.__setattr__(self, "max_json_depth", min(self.max_json_depth, JSON_DEPTH_CEILING))

    @classmethod
    def from_env(cls) -> Limits:
        """The limits the settings give (:class:`event_pipeline.settings.Settings`); raises
        :class:`~event_pipeline.settings.SettingsError` for a value that is not a whole number."""
        configured = settings.current()
        return cls(**{name: getattr(configured, name) for name in cls.__dataclass_fields__})

    def hint(self, name: str) -> str:
        return f"limit {name}={getattr(self, name)}; raise it with EVENT_PIPELINE_{name.upper()}"


JSON_DEPTH_CEILING = 200


@dataclass
class Archive:
    """A checked archive: its data files and media members, read from a private copy of the file.

    The copy (see :func:`snapshot`) is the bytes ``sha256`` was computed from; every member is read
    from it, so replacing or rewriting the file at ``path`` meanwhile changes nothing. Close it
    (:meth:`close`, or use the archive as a context manager) when done; it is deleted then.
    """

    path: Path
    sha256: str
    members: dict[str, str] = field(default_factory=dict)  # data file -> member name
    media: dict[str, str] = field(default_factory=dict)  # normalised path -> member name
    problems: Problems = field(default_factory=Problems)
    limits: Limits = field(default_factory=Limits)
    odd_text: bool = False  # a data file read so far escapes NUL or a surrogate: strings need checking
    _parsed: dict[str, Any] = field(default_factory=dict, repr=False)  # whole documents read so far
    _zip: zipfile.ZipFile | None = field(default=None, repr=False)
    _marked: bool = field(default=False, repr=False)  # the parser made a NotStorable since last reset

    def __enter__(self) -> Archive:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def zipfile(self) -> zipfile.ZipFile | None:
        """The private copy, open as a zip (None once closed, or when the file was no zip)."""
        return self._zip

    def close(self) -> None:
        """Close (and so delete) the private copy; members cannot be read any more."""
        if self._zip is not None:
            close_copy(self._zip)
            self._zip = None

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
        if self._zip is None:
            self.problems.error(name, "member cannot be read: the archive is closed")
            return None
        try:
            with self._zip.open(member) as fh:
                raw = fh.read(self.limits.max_json_bytes + 1)
        except ZIP_ERRORS as exc:
            self.problems.error(name, f"member cannot be read from the zip: {exc}")
            return None
        if not self.odd_text and _ODD_ESCAPE.search(raw):
            # Valid JSON can carry NUL and lone surrogates only as \u escapes (raw control characters
            # and encoded surrogates are refused by the parser and the UTF-8 decoder), so strings are
            # checked for them only when such an escape occurs (dbsafe), not in every archive.
            self.odd_text = True
        try:
            return raw.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            self.problems.error(name, f"not valid UTF-8 at byte {exc.start}")
            return None

    def _loads(self, name: str, text: str) -> Any:
        self._marked = False
        try:
            try:
                document = self._decoder.decode(text)
            except json.JSONDecodeError:
                raise
            except ValueError:  # an integer literal too long for int() (sys.get_int_max_str_digits)
                document = self._marking_decoder.decode(text)
        except (json.JSONDecodeError, RecursionError) as exc:
            self._json_error(name, exc)
            return INVALID
        if self._marked or _brackets(text, 0, len(text)) >= self.limits.max_json_depth:
            self._screen_document(self.label(name), document)
        return document

    def _stream(self, name: str, text: str, start: int) -> Iterator[Any]:
        label = self.label(name)
        limit = self.limits.max_json_depth
        try:
            for index, (value, begin, end) in enumerate(_array_spans(text, start, self._decode)):
                if self._marked or _brackets(text, begin, end) >= limit - 1:
                    value = self._screen_record(label, value, 1, index)
                    self._marked = False
                if value is not _DROPPED:
                    yield value
        except (json.JSONDecodeError, RecursionError) as exc:
            self._parsed[name] = INVALID
            self._json_error(name, exc)

    def _decode(self, text: str, index: int) -> tuple[Any, int]:
        try:
            return self._decoder.raw_decode(text, index)
        except json.JSONDecodeError:
            raise
        except ValueError:  # an integer literal too long for int(): again, with such literals marked
            return self._marking_decoder.raw_decode(text, index)

    @functools.cached_property
    def _decoder(self) -> json.JSONDecoder:
        # The hooks turn what no database stores into NotStorable markers, which screening reports
        # and removes: parsed data never holds NaN, an infinity or an unreadable integer. They cost
        # nothing for other values (integers are parsed natively until one is too long).
        return json.JSONDecoder(parse_constant=self._constant, parse_float=self._float)

    @functools.cached_property
    def _marking_decoder(self) -> json.JSONDecoder:
        return json.JSONDecoder(parse_constant=self._constant, parse_float=self._float, parse_int=self._int)

    def _constant(self, name: str) -> NotStorable:
        """``NaN``, ``Infinity``, ``-Infinity``: not JSON, and no database column or JSON type stores them."""
        self._marked = True
        return NotStorable(f"{name} is not a finite number")

    def _float(self, literal: str) -> float | NotStorable:
        value = float(literal)
        if math.isfinite(value):
            return value
        self._marked = True  # 1e400: a valid literal, but beyond a double
        return NotStorable(f"{literal[:40]} is beyond the largest floating-point number")

    def _int(self, literal: str) -> int | NotStorable:
        try:
            return int(literal)
        except ValueError:
            self._marked = True
            return NotStorable(f"an integer of {len(literal.lstrip('-'))} digits is longer than Python reads")

    def _screen_document(self, file: str, document: Any) -> None:
        """A whole document with a value refused above: each record-like object is screened."""
        if isinstance(document, list):
            document[:] = [
                kept
                for i, value in enumerate(document)
                if (kept := self._screen_record(file, value, 1, i)) is not _DROPPED
            ]
        elif isinstance(document, dict):
            self._screen_record(file, document, 0, None)

    def _screen_record(self, file: str, record: Any, base: int, index: int | None) -> Any:
        """Report each field of ``record`` (nested ``base`` levels deep in its file) holding a value the
        parser marked as not storable or nested beyond ``max_json_depth``, and remove it, so the normaliser
        never sees it; an ``id`` becomes a :class:`NotStorable` the normaliser reports as unusable.
        Returns the record, or ``_DROPPED`` for a non-object record nested too deeply."""
        limit = self.limits.max_json_depth
        if not isinstance(record, dict):
            depth, _ = _measure(record)
            if base + depth <= limit:
                return record
            where = f"record #{index + 1}: " if index is not None else ""
            hint = self.limits.hint("max_json_depth")
            self.problems.error(file, f"{where}nested {base + depth} levels deep ({hint})")
            return _DROPPED
        record_id = record.get("id")
        shown_id = record_id if isinstance(record_id, (str, int)) and not isinstance(record_id, bool) else None
        for key, value in list(record.items()):
            depth, marked = _measure(value)
            if base + 1 + depth > limit:
                what = reason = f"nested {base + 1 + depth} levels deep ({self.limits.hint('max_json_depth')})"
            elif marked is not None:
                path, marker = marked
                what = f"{marker.what}{f' (at {key}{path})' if path else ''}"
                reason = f"{what}; the database cannot store it"
            else:
                continue
            if key == "id":
                record[key] = NotStorable(what)  # reported once, by the normaliser, as an unusable id
            else:
                self.problems.error(file, reason, shown_id, key)
                del record[key]
        return record

    def _json_error(self, data_file: str, exc: Exception) -> None:
        if isinstance(exc, json.JSONDecodeError):
            message = f"invalid JSON: {exc.msg} at line {exc.lineno} column {exc.colno} (char {exc.pos})"
        else:
            message = f"invalid JSON: nested too deeply ({self.limits.hint('max_json_depth')})"
        self.problems.error(self.label(data_file), message)


INVALID = object()  # unreadable or not JSON: the problem is recorded
_STREAMED = object()  # read once, as a stream: not kept
_DROPPED = object()  # a record removed by screening: the problem is recorded
_WHITESPACE = re.compile(r"[ \t\n\r]*")
_DECODER = json.JSONDecoder()
_ODD_ESCAPE = re.compile(rb"\\u(?:0000|[dD])")  # \u0000, or \uDxxx: possibly a lone surrogate


def _brackets(text: str, begin: int, end: int) -> int:
    """An upper bound of how deeply ``text[begin:end]`` nests: its opening brackets (cheap, in C)."""
    return text.count("[", begin, end) + text.count("{", begin, end)


def _measure(value: Any) -> tuple[int, tuple[str, NotStorable] | None]:
    """How deeply ``value`` nests (a scalar 0, ``[]`` 1, ``[[1]]`` 2), and the first :class:`NotStorable`
    in it with its path (``[3].lat``); iterative, so any depth the parser produced is measured."""
    deepest, found = 0, None
    stack: list[tuple[Any, int, str]] = [(value, 0, "")]
    while stack:
        item, depth, path = stack.pop()
        if isinstance(item, dict):
            deepest = max(deepest, depth + 1)
            stack.extend((v, depth + 1, f"{path}.{k}") for k, v in item.items())
        elif isinstance(item, list):
            deepest = max(deepest, depth + 1)
            stack.extend((v, depth + 1, f"{path}[{i}]") for i, v in enumerate(item))
        elif found is None and isinstance(item, NotStorable):
            found = (path, item)
    return deepest, found


def _array_spans(
    text: str, start: int, decode: Callable[[str, int], tuple[Any, int]] = _DECODER.raw_decode
) -> Iterator[tuple[Any, int, int]]:
    """The elements of the JSON array at ``text[start]``, one at a time, each with where its text begins
    and ends, with the errors (and positions) ``json.loads`` would report."""
    index = _WHITESPACE.match(text, start + 1).end()
    if text.startswith("]", index):
        index += 1
    else:
        while True:
            begin = index
            value, index = decode(text, index)
            yield value, begin, index
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


def _array_elements(text: str, start: int) -> Iterator[Any]:
    """The elements of the JSON array at ``text[start]``, one at a time (see :func:`_array_spans`)."""
    for value, _, _ in _array_spans(text, start):
        yield value


def close_copy(zf: zipfile.ZipFile) -> None:
    """Close a zip opened on a private copy (:func:`snapshot`), and so delete the copy: ``ZipFile``
    does not close a file object it was given."""
    copy = zf.fp
    zf.close()
    if copy is not None:
        copy.close()


def snapshot(path: Path) -> tuple[IO[bytes], str]:
    """A private copy of the file at ``path`` (an anonymous temporary file, gone once closed, even
    after a crash) and the sha256 of exactly its bytes, read in one pass: whatever happens to ``path``
    afterwards, the copy is the archive that hash names. Raises OSError if the file cannot be read."""
    copy = tempfile.TemporaryFile(prefix="event-pipeline-archive-")  # noqa: SIM115 (returned open)
    try:
        digest = hashlib.sha256()
        with open(path, "rb") as source:
            while chunk := source.read(1 << 20):
                digest.update(chunk)
                copy.write(chunk)
        copy.seek(0)
    except BaseException:
        copy.close()
        raise
    return copy, digest.hexdigest()


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
