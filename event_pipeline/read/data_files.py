"""A checked archive's data files, parsed on demand from its private copy, screened for what no database stores.

:class:`Archive` is what :func:`~event_pipeline.read.archive.read_archive` returns:
``members`` (data file -> member name), ``media`` (normalised path -> member name),
``problems``, and the open private copy. :meth:`Archive.document` parses a data
file whole; :meth:`Archive.records` gives a file that is one JSON array one record
at a time, read, decoded and parsed ``PIECE_BYTES`` at a time, so neither the
parsed records nor the text of a large file are ever whole in memory (the
sessions of 100 000 sessions are 155 MiB of text; of 1 000 000, 1.6 GiB).

What the parser reads but no database stores (``NaN``, ``Infinity``, a float
literal beyond a double, an integer literal too long for ``int()``) and values
nested deeper than ``max_json_depth`` are reported here, located by file, record
id and field, and removed before the normaliser sees them.
"""

from __future__ import annotations

import codecs
import functools
import json
import math
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from event_pipeline.problems import Problems
from event_pipeline.read.json_text import (
    DROPPED,
    INVALID,
    ODD_ESCAPE,
    STREAMED,
    ChunkedText,
    array_spans,
    brackets,
    measure,
)
from event_pipeline.read.limits import Limits
from event_pipeline.read.private_copy import ZIP_ERRORS, close_copy
from event_pipeline.read.storable import NotStorable

PIECE_BYTES = 4 << 20  # a data file is read, decoded and parsed this many bytes at a time


class _Unreadable(Exception):
    """A data file could not be read or decoded; the problem is recorded."""


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
        return None if document is INVALID or document is STREAMED else document

    def parsed(self, name: str) -> bool:
        """Whether the archive has this data file and it is valid JSON (as far as read)."""
        return name in self.members and self._parsed.get(name) is not INVALID

    def records(self, name: str) -> Iterator[Any] | Any:
        """A data file that is a JSON array: its elements one by one, each dropped once the caller is done
        with it, from its text read in pieces (never whole in memory). Anything else: the whole document,
        as :meth:`document`."""
        if name in self._parsed or name not in self.members:
            return self.document(name)
        source = ChunkedText(self._pieces(name))
        try:
            start = source.skip(0)
            if not source.at(start, "["):
                self._parsed[name] = self._loads(name, source.text + "".join(source.rest()))
                return self.document(name)
        except _Unreadable:
            self._parsed[name] = INVALID
            return None
        self._parsed[name] = STREAMED
        return self._stream(name, source, start)

    def check_unread(self) -> None:
        """Parse the data files nobody asked for, so their syntax errors are reported too."""
        for name in self.members:
            if name not in self._parsed:
                self.document(name)
                self._parsed[name] = STREAMED  # checked; not worth keeping

    def label(self, name: str) -> str:
        """How problems name a data file: as the archive does (``sessions`` or ``sessions.json``)."""
        return self.members.get(name, name).rsplit("/", 1)[-1]

    def _text(self, name: str) -> str | None:
        """The whole text of a data file, or None if it is missing or cannot be read (the problem is recorded)."""
        if name not in self.members:
            return None
        try:
            return "".join(self._pieces(name))
        except _Unreadable:
            return None

    def _pieces(self, name: str) -> Iterator[str]:
        """The text of a data file (which the archive has) in pieces of up to :data:`PIECE_BYTES` bytes,
        decoded as UTF-8, a leading byte order mark dropped. What cannot be read (the zip, or bytes that are
        no UTF-8, with their offset after the byte order mark as decoding the whole gives it) is recorded
        and raises ``_Unreadable``."""
        label = self.label(name)
        if self._zip is None:
            self.problems.error(label, "member cannot be read: the archive is closed")
            raise _Unreadable
        decoder = codecs.getincrementaldecoder("utf-8")()
        left = self.limits.max_json_bytes + 1  # the archive's check refused larger files by their header
        fed = 0  # bytes given to the decoder, after the byte order mark
        tail = b""  # the end of the last piece: an escape may straddle two
        try:
            with self._zip.open(self.members[name]) as fh:
                while True:
                    raw = fh.read(min(PIECE_BYTES, left))
                    left -= len(raw)
                    if fed == 0 and not tail and raw.startswith(codecs.BOM_UTF8):
                        raw, tail = raw[len(codecs.BOM_UTF8) :], codecs.BOM_UTF8
                    if not self.odd_text and ODD_ESCAPE.search(tail[-5:] + raw):
                        # Valid JSON can carry NUL and lone surrogates only as \u escapes (raw control characters
                        # and encoded surrogates are refused by the parser and the UTF-8 decoder), so strings are
                        # checked for them only when such an escape occurs (read/storable.py), not in every archive.
                        self.odd_text = True
                    final = not raw or not left
                    try:
                        text = decoder.decode(raw, final)
                    except UnicodeDecodeError as exc:
                        pending = len(decoder.getstate()[0])  # undecoded bytes of the last piece, before raw
                        self.problems.error(label, f"not valid UTF-8 at byte {fed - pending + exc.start}")
                        raise _Unreadable from None
                    fed += len(raw)
                    tail = raw or tail
                    if text:
                        yield text
                    if final:
                        return
        except ZIP_ERRORS as exc:
            self.problems.error(label, f"member cannot be read from the zip: {exc}")
            raise _Unreadable from None

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
        if self._marked or brackets(text, 0, len(text)) >= self.limits.max_json_depth:
            self._screen_document(self.label(name), document)
        return document

    def _stream(self, name: str, source: ChunkedText, start: int) -> Iterator[Any]:
        label = self.label(name)
        limit = self.limits.max_json_depth
        try:
            for index, (value, text, begin, end) in enumerate(array_spans(source, start, self._decode)):
                if self._marked or brackets(text, begin, end) >= limit - 1:
                    value = self._screen_record(label, value, 1, index)
                    self._marked = False
                if value is not DROPPED:
                    yield value
        except _Unreadable:  # recorded
            self._parsed[name] = INVALID
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
                if (kept := self._screen_record(file, value, 1, i)) is not DROPPED
            ]
        elif isinstance(document, dict):
            self._screen_record(file, document, 0, None)

    def _screen_record(self, file: str, record: Any, base: int, index: int | None) -> Any:
        """Report each field of ``record`` (nested ``base`` levels deep in its file) holding a value the
        parser marked as not storable or nested beyond ``max_json_depth``, and remove it, so the normaliser
        never sees it; an ``id`` becomes a :class:`NotStorable` the normaliser reports as unusable.
        Returns the record, or ``DROPPED`` for a non-object record nested too deeply."""
        limit = self.limits.max_json_depth
        if not isinstance(record, dict):
            depth, _ = measure(record)
            if base + depth <= limit:
                return record
            where = f"record #{index + 1}: " if index is not None else ""
            hint = self.limits.hint("max_json_depth")
            self.problems.error(file, f"{where}nested {base + depth} levels deep ({hint})")
            return DROPPED
        record_id = record.get("id")
        shown_id = record_id if isinstance(record_id, (str, int)) and not isinstance(record_id, bool) else None
        for key, value in list(record.items()):
            depth, marked = measure(value)
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
