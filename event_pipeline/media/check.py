"""An archive's media, checked at validation: before any write, by ``validate`` and ``import`` alike.

:func:`check_media` goes over every media column (``ModelSpec.media``) of every
record, in the order the import stores them, and:

- resolves each archive path to a zip member (exactly, or by a repair that is
  reported as a warning); a path the zip lacks is a warning (the column will
  be left empty);
- reads every member so named once, whole, and keeps its sha256 and size
  (the import stores it under that sha256, see ``prepare.py``): a member that
  cannot be read (encrypted, bad CRC, unsupported compression, truncated) is
  an error naming the member and the file, record and field that name it,
  and every such member is reported, not only the first;
- adds up the bytes of the distinct objects the import would store and
  refuses more than ``EVENT_PIPELINE_MAX_MEDIA_BYTES`` (default 4 GiB).

URLs are not requested here (validation makes no network request); an import
that fetches media (``EVENT_PIPELINE_MEDIA_FETCH_HOSTS``) counts their bytes
against the same limit as they arrive. Nothing is written anywhere.
"""

from __future__ import annotations

import contextlib
import hashlib
import posixpath
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote

from event_pipeline import settings
from event_pipeline.media.fetch import is_url
from event_pipeline.media.served_types import served_type
from event_pipeline.model.catalog import MEDIA_MODELS, Media, ModelSpec
from event_pipeline.problems import Problem
from event_pipeline.read.archive import media_key
from event_pipeline.read.normalise import Normalised, NormRecord
from event_pipeline.read.private_copy import ZIP_ERRORS

MAX_MEDIA_BYTES_ENV = "EVENT_PIPELINE_MAX_MEDIA_BYTES"
READ_CHUNK = 1 << 20


def max_media_bytes() -> int:
    """The limit on the bytes of the distinct media objects one import stores (``EVENT_PIPELINE_MAX_MEDIA_BYTES``)."""
    return settings.current().max_media_bytes


def limit_message(total: int, limit: int) -> str:
    return (
        f"the media to store come to {total} bytes (distinct files), over the limit of {limit} bytes; "
        f"raise it with {MAX_MEDIA_BYTES_ENV}"
    )


@dataclass(frozen=True)
class Digest:
    """A zip member's bytes: their sha256 (hex) and length in bytes."""

    sha256: str
    size: int


@dataclass
class MediaCheck:
    """What :func:`check_media` found. ``digests``: zip member -> :class:`Digest` of every member a media
    column names and that could be read; ``warnings`` and ``errors`` in the order of the records."""

    digests: dict[str, Digest] = field(default_factory=dict)
    warnings: list[Problem] = field(default_factory=list)
    errors: list[Problem] = field(default_factory=list)


def media_records(normalised: Normalised, spec: ModelSpec) -> list[NormRecord]:
    """The records whose media columns an import stores, for one model (the event: its one record)."""
    return normalised.records.get(spec.name, [])


def archive_paths(normalised: Normalised) -> Iterator[tuple[ModelSpec, Media, NormRecord, str]]:
    """Every (model, column, record, value) whose value is an archive path (not empty, not a URL)."""
    for spec in MEDIA_MODELS:
        for record in media_records(normalised, spec):
            for media in spec.media:
                raw = record.value(media.column)
                if isinstance(raw, str) and raw.strip() and not is_url(raw):
                    yield spec, media, record, raw


def check_media(source: str | Path | zipfile.ZipFile, members: dict[str, str], normalised: Normalised) -> MediaCheck:
    """Resolve and read every media file the records name; see the module's docstring.

    ``source``: the archive, best the open private copy it was validated from (``Archive.zipfile``;
    left open), else its path. ``members``: the zip's media files, normalised path -> member name
    (``Archive.media``).
    Never raises for the archive's content: every problem is in the result."""
    found = MediaCheck()
    finder = MemberFinder(members)
    named_by: dict[str, list[Problem]] = {}  # member -> where it is named (file, record, field), in order
    for spec, media, record, raw in archive_paths(normalised):
        member, how = finder.find(raw)
        where = (spec.files[0], record.source_id, media.column)
        if member is None:
            found.warnings.append(Problem(*where, missing_message(raw)))
            continue
        if how:
            found.warnings.append(Problem(*where, f"media file {raw!r} matched {member!r} ({how})"))
        named_by.setdefault(member, []).append(Problem(*where, raw))
    if not named_by:
        return found
    try:
        opened = contextlib.nullcontext(source) if isinstance(source, zipfile.ZipFile) else zipfile.ZipFile(source)
        with opened as zf:
            for member, places in named_by.items():
                try:
                    found.digests[member] = _digest(zf, member)
                except ZIP_ERRORS as exc:
                    found.errors.append(_unreadable(member, places, exc))
    except ZIP_ERRORS as exc:  # the reader opened it moments ago; the file changed or went away
        first = next(iter(named_by.values()))[0]
        found.errors.append(Problem(first.file, first.record_id, first.field, f"cannot read the archive: {exc}"))
        return found
    _check_limit(found, named_by, max_media_bytes())
    return found


def missing_message(raw: str) -> str:
    return f"media file {raw!r} is not in the archive; left empty"


def _digest(zf: zipfile.ZipFile, member: str) -> Digest:
    digest, size = hashlib.sha256(), 0
    with zf.open(member) as source:  # reading to the end checks the CRC
        for chunk in iter(lambda: source.read(READ_CHUNK), b""):
            digest.update(chunk)
            size += len(chunk)
    return Digest(digest.hexdigest(), size)


def _unreadable(member: str, places: list[Problem], exc: BaseException) -> Problem:
    first = places[0]
    reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    others = len(places) - 1
    also = f"; also named by {others} other field{'s' if others > 1 else ''}" if others else ""
    message = f"media file {first.message!r} (zip member {member!r}) cannot be read: {reason}{also}"
    return Problem(first.file, first.record_id, first.field, message)


def _check_limit(found: MediaCheck, named_by: dict[str, list[Problem]], limit: int) -> None:
    """The distinct objects (by sha256 and served suffix, as stored) must stay within ``limit`` bytes;
    the error names the field whose file goes over it."""
    seen: set[tuple[str, str]] = set()
    total = 0
    over: Problem | None = None
    for member, places in named_by.items():
        digest = found.digests.get(member)
        if digest is None:
            continue
        identity = (digest.sha256, served_type(member)[0])
        if identity in seen:
            continue
        seen.add(identity)
        total += digest.size
        if total > limit and over is None:
            over = places[0]
    if over is not None:
        found.errors.append(Problem(over.file, over.record_id, over.field, limit_message(total, limit)))


class MemberFinder:
    """Finds the zip member an archive path names: exactly (no leading slash, NFC), else by a few
    unambiguous repairs, each reported as a warning by the caller."""

    def __init__(self, media: dict[str, str]):
        self.media = media
        self._folded: dict[str, list[str]] | None = None

    def find(self, raw: str) -> tuple[str | None, str | None]:
        """(member, how it was repaired or None), or (None, None) if the zip has no such file."""
        key = media_key(raw.strip())
        member = self.media.get(key)
        if member is not None:
            return member, None
        # The repairs, each tried only where it can change something (most missing files need none).
        repairs = (
            (media_key(posixpath.normpath(key)) if _UNCLEAN.search(key) else None, "path normalised"),
            (media_key(unquote(key)) if "%" in key else None, "percent-decoded"),
            (None if key.isascii() else _mojibake(key), "mis-encoded name repaired"),
        )
        for candidate, how in repairs:
            if candidate and candidate != key and candidate in self.media:
                return self.media[candidate], how
        if self._folded is None:
            self._folded = {}
            for name in self.media:
                self._folded.setdefault(name.casefold(), []).append(name)
        same = self._folded.get(key.casefold(), [])
        if len(same) == 1:
            return self.media[same[0]], "matched ignoring case"
        return None, None


_UNCLEAN = re.compile(r"//|(^|/)\.\.?(/|$)")  # what posixpath.normpath would change in a relative path


def _mojibake(text: str) -> str | None:
    """UTF-8 that was decoded as Windows-1252 or Latin-1 (``FranÃ§ois`` for ``François``), decoded right."""
    if text.isascii():
        return None
    for encoding in ("cp1252", "latin-1"):
        try:
            fixed = text.encode(encoding).decode("utf-8")
        except UnicodeError:
            continue
        if fixed != text:
            return media_key(fixed)
    return None
