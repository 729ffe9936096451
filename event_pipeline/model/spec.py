"""The vocabulary of the catalog: a model, its references, its media columns, its derived columns, a link.

:mod:`event_pipeline.model.catalog` describes the nine Open Event models with
these; nothing else declares model knowledge.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from event_pipeline.model import records


@dataclass(frozen=True)
class Link:
    """A many-to-many link between two models, kept in a table of its own.

    The reference server keeps sessions and speakers in an association table
    (``speakers_sessions`` in ``app/models/session.py``); its exports list the
    link on both sides (a session's ``speakers``, a speaker's ``sessions``), and
    the link is the union of both. The ``owner`` model's step plans and writes
    the link rows, so the ``member`` model never depends on the owner.
    """

    table: str  # the link table, e.g. "session_speakers"
    owner: str  # the model whose step plans and writes the link, e.g. "sessions"
    member: str  # the other model, e.g. "speakers"
    owner_field: str  # the owner record's list of members, e.g. a session's "speakers"
    member_field: str  # the member record's list of owners, e.g. a speaker's "sessions"
    owner_column: str  # the link table's column holding the owner's id, e.g. "session_id"
    member_column: str  # ... and the member's, e.g. "speaker_id"

    def pair(self, model: str, own_id: str, other_id: str) -> tuple[str, str]:
        """(owner id, member id) of a link listed by a record of ``model``."""
        return (own_id, other_id) if model == self.owner else (other_id, own_id)


@dataclass(frozen=True)
class Ref:
    """A reference from one model's records to another model's ids."""

    field: str  # canonical source field, e.g. "track"
    target: str  # model name, e.g. "tracks"
    column: str | None = None  # foreign-key column; None for a list
    many: bool = False  # a list of references
    inline_creates: bool = False  # an inline object for an unknown id becomes a record
    inverse: str | None = None  # a list mirroring the target's own reference (a track's ``sessions``)
    link: Link | None = None  # one side of a many-to-many link (a session's ``speakers``)
    # The target's fields the 2016 (kebab) exports repeat inside a reference object besides its id;
    # empty: the target's label (``name``, a session's ``title``).
    shown: tuple[str, ...] = ()

    @property
    def fk_column(self) -> str:
        """The foreign-key column; raises ValueError for a list reference (``ModelSpec.fk_refs`` have one)."""
        if self.column is None:
            raise ValueError(f"{self.field} is a list reference, not a foreign key")
        return self.column


def link_refs(link: Link, owner_shows: tuple[str, ...] = (), member_shows: tuple[str, ...] = ()) -> tuple[Ref, Ref]:
    """The owner's and the member's side of ``link`` as references (``*_shows``: see ``Ref.shown``)."""
    return (
        Ref(link.owner_field, link.member, many=True, link=link, shown=owner_shows),
        Ref(link.member_field, link.owner, many=True, link=link, shown=member_shows),
    )


@dataclass(frozen=True)
class Derived:
    """A column computed from another field of the same record, e.g. a session type's ``length``
    ("00:30") as ``length_minutes`` (30). A value that does not parse stays as text, with a warning
    saying it is not ``what``."""

    column: str
    source: str
    parse: Callable[[Any], Any]
    what: str


@dataclass(frozen=True)
class Media:
    """A column holding a media file's archive path (or URL); its copy is stored under the event's
    folder by the sha256 of its bytes (``media/prepare.py``)."""

    column: str


@dataclass(frozen=True)
class ModelSpec:
    """One Open Event model: its asset and table, its files in an archive, its fields and references."""

    name: str  # asset name
    table: str
    record: type[records.Record]
    files: tuple[str, ...]  # archive file names (".json" optional)
    required_file: bool = False  # an archive without any of ``files`` is refused
    label: str = "name"  # the field that names a record to a person; a reference may name a record by it
    required: tuple[str, ...] = ()  # fields that must be present and valid
    refs: tuple[Ref, ...] = ()
    media: tuple[Media, ...] = ()  # columns holding archive media paths, copied to storage
    aliases: dict[str, str] = field(default_factory=dict)  # source key -> field
    embedded_in_event: tuple[str, ...] = ()  # event keys that may hold the list
    derived: tuple[Derived, ...] = ()  # columns computed from other fields (never written by an export)
    # Per export dialect, the fields written under one of their aliases rather than their own name
    # (``kebab``: the 2016 exports; ``snake``: the reference server's current export). Each name must
    # map back to its field through ``aliases`` (tests/test_export.py checks it).
    export_names: dict[str, dict[str, str]] = field(default_factory=dict)
    owner_column: str = "event_id"  # the column naming the event a row belongs to (the event's own: its id)

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(self.record.model_fields)

    @functools.cached_property  # asked for every record of a large archive
    def fk_refs(self) -> tuple[Ref, ...]:
        return tuple(r for r in self.refs if r.column)

    @functools.cached_property
    def derived_columns(self) -> frozenset[str]:
        return frozenset(d.column for d in self.derived)

    @functools.cached_property
    def link(self) -> Link | None:
        """The many-to-many link this model owns (plans and writes), if any."""
        return next((r.link for r in self.refs if r.link and r.link.owner == self.name), None)
