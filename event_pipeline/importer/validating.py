"""Step 1, validate: the whole archive read, normalised and checked; any error stops the import before a write."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine

from event_pipeline.collector import gc_paused
from event_pipeline.media.check import Digest, check_media
from event_pipeline.model.catalog import ModelSpec
from event_pipeline.plan.diff import EventTarget, event_target
from event_pipeline.problems import ImportFailed, Problem
from event_pipeline.read.archive import read_archive
from event_pipeline.read.normalise import Normalised, normalise


@dataclass
class ValidatedArchive:
    """The ``archive`` asset's output: a checked archive and where it goes.

    Pickled (for a re-execution from failure) without its normalised records,
    which are most of an import's memory and pickle to hundreds of MB: they
    are read again from the archive on first use, after checking that its
    bytes are still the ones validated.
    """

    key: str
    path: str
    sha256: str
    target: EventTarget
    unchanged: bool  # same bytes as the last successful import: nothing to do
    _normalised: Normalised | None = field(repr=False)
    warnings: list[Problem]
    media: dict[str, str] = field(default_factory=dict)  # the zip's media files: normalised path -> member
    unmapped: dict[str, dict[str, int]] = field(default_factory=dict)  # see Normalised.unmapped
    media_digests: dict[str, Digest] = field(default_factory=dict)  # member -> its bytes' sha256 and size
    closed: bool = field(default=False, repr=False)  # see close()

    @property
    def normalised(self) -> Normalised | None:
        if self.closed:
            raise ValueError(f"the archive of import {self.key!r} was closed (its import ended)")
        if self._normalised is None and not self.unchanged:
            self._normalised = _reread(Path(self.path), self.sha256)
        return self._normalised

    def close(self) -> None:
        """Free the normalised records (their spilled bodies, ``Normalised.close``) once the import is over;
        reading them afterwards raises ValueError."""
        if self._normalised is not None:
            self._normalised.close()
            self._normalised = None
        self.closed = True

    def records(self, spec: ModelSpec) -> list:
        return self.normalised.records.get(spec.name, []) if self.normalised else []

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_normalised": None, "closed": False}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update({"closed": False, **state})  # a pickle of a version without ``closed``


def _reread(path: Path, sha256: str) -> Normalised:
    """The normalised archive again, in a later process of the same run (re-execution from failure)."""
    with read_archive(path) as archive:
        if archive.sha256 != sha256:
            raise ImportFailed(
                [Problem(path.name, None, None, "the archive changed since this run validated it; start a new import")]
            )
        with gc_paused():
            return normalise(archive)


def validate_archive(
    engine: Engine, path: str | Path, key: str, *, force: bool = False, reserve: bool = True
) -> ValidatedArchive:
    """Read, normalise and cross-check the archive. Raises ImportFailed listing every error.

    The archive's bytes are copied and hashed first, in one pass, and read only from that copy (see
    ``archive.snapshot``): the same bytes as the last successful import of the key are not even
    parsed, and replacing the file meanwhile cannot mix two versions."""
    with read_archive(path) as archive:
        problems = archive.problems
        sha256 = archive.sha256
        if not sha256:
            raise ImportFailed(problems.errors, problems.warnings)  # the file cannot be read
        target = event_target(engine, key, reserve=False)
        if not force and target.previous_sha256 == sha256:
            return ValidatedArchive(key, str(path), sha256, target, True, None, [])
        if problems.errors and not archive.members:
            raise ImportFailed(problems.errors, problems.warnings)  # not a zip we can read at all
        with gc_paused():
            # Normalise even after a JSON error elsewhere, so every problem is reported at once.
            normalised = normalise(archive)
            # Every media member read, from the same private copy, before any write.
            media = check_media(archive.zipfile or archive.path, archive.media, normalised)
            problems.errors.extend(media.errors)
            problems.warnings.extend(media.warnings)
            if problems.errors:
                normalised.close()
                raise ImportFailed(problems.errors, problems.warnings)
    if target.is_new and reserve:
        target = event_target(engine, key)  # a new event's id is reserved only for a valid archive
    warnings = normalised.problems.warnings
    return ValidatedArchive(
        key,
        str(path),
        sha256,
        target,
        False,
        normalised,
        warnings,
        archive.media,
        normalised.unmapped,
        media.digests,
    )
