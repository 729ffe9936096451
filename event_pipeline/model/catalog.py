"""The nine Open Event models, described once.

Everything else (tables, assets, normalisation, loading, media) is generated
from :data:`MODELS`. The order of the tuple is the reference server's import
order; each model's ``refs`` name the models it points at, which become the
asset dependencies.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from event_pipeline.model import durations, records


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
    """A column holding a media file's archive path (or URL), and where its copy is stored.

    ``key`` is the reference server's storage layout under ``events/{event_id}/``
    (``{id}`` is the record's database id); the stored object's name inside
    that folder is the sha256 of its bytes, see ``media/prepare.py``.
    """

    column: str
    key: str


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


# Every generation's names for a record's times: the kebab/snake exports (``starts-at``), the 2016
# exporter (``start_time``), the 2015 API dump (``begin``/``end``; open-event-server#31).
_TIMES = {
    "start_time": "starts_at",
    "end_time": "ends_at",
    "start": "starts_at",
    "end": "ends_at",
    "begin": "starts_at",
}
# A child record's link to its event (the current exporter writes ``event_id``; JSON:API an ``event``
# relationship): checked against the archive's event, not stored twice.
PARENT_FIELDS = ("event", "event_id")

SESSION_SPEAKERS = Link(
    table="session_speakers",
    owner="sessions",
    member="speakers",
    owner_field="speakers",
    member_field="sessions",
    owner_column="session_id",
    member_column="speaker_id",
)
LINKS: tuple[Link, ...] = (SESSION_SPEAKERS,)
_SESSION_SIDE, _SPEAKER_SIDE = link_refs(SESSION_SPEAKERS, owner_shows=("name", "organisation"))

MODELS: tuple[ModelSpec, ...] = (
    ModelSpec(
        name="event",
        table="events",
        record=records.EventRecord,
        files=("event", "events"),  # "events.json": the 2015-2016 API dump, {"events": [...]}
        required_file=True,
        owner_column="id",
        required=("name",),
        media=(Media("logo_url", "logo"), Media("original_image_url", "background")),
        aliases={
            **_TIMES,
            "logo": "logo_url",
            "background_image": "original_image_url",
            "background_url": "original_image_url",
            "type": "event_type",
            "event_url": "external_event_url",
            "event_copyright": "copyright",
            "call_for_papers": "speakers_call",
            "has_session_speakers": "is_sessions_speakers_enabled",
            "is_session_speakers_enabled": "is_sessions_speakers_enabled",
            # The reference server renamed the organiser columns (app/models/event.py).
            "owner_name": "organizer_name",
            "owner_description": "organizer_description",
            "url": "external_event_url",  # the 2015 API dump's event "url"
        },
        export_names={
            "kebab": {"event_type": "type", "copyright": "event_copyright"},
            "snake": {"organizer_name": "owner_name", "organizer_description": "owner_description"},
        },
    ),
    ModelSpec(
        name="social_links",
        table="social_links",
        record=records.SocialLinkRecord,
        files=("social_links",),
        aliases={"url": "link"},
        embedded_in_event=("social_links",),
    ),
    ModelSpec(
        name="custom_forms",
        table="custom_forms",
        record=records.CustomFormRecord,
        files=("forms", "custom_forms"),
        label="id",
    ),
    ModelSpec(
        name="microlocations",
        table="microlocations",
        record=records.MicrolocationRecord,
        files=("microlocations",),
    ),
    ModelSpec(
        name="sponsors",
        table="sponsors",
        record=records.SponsorRecord,
        files=("sponsors",),
        media=(Media("logo_url", "sponsors/{id}/logo"),),
        aliases={"logo": "logo_url", "type": "sponsor_type"},
        export_names={"kebab": {"sponsor_type": "type"}, "snake": {"sponsor_type": "type"}},
    ),
    ModelSpec(
        name="speakers",
        table="speakers",
        record=records.SpeakerRecord,
        files=("speakers",),
        media=(Media("photo_url", "speakers/{id}/photo"),),
        refs=(_SPEAKER_SIDE,),
        aliases={
            "photo": "photo_url",
            "featured": "is_featured",
            # Renamed in 2016 (open-event-server bd6e5947f, migration dcc03295ba71).
            "biography": "short_biography",
            "web": "website",
        },
    ),
    ModelSpec(
        name="tracks",
        table="tracks",
        record=records.TrackRecord,
        files=("tracks",),
        media=(Media("track_image_url", "tracks/{id}/track_image"),),
        refs=(Ref("sessions", "sessions", many=True, inverse="track"),),
        aliases={"image_url": "track_image_url", "track_image": "track_image_url"},
    ),
    ModelSpec(
        name="session_types",
        table="session_types",
        record=records.SessionTypeRecord,
        files=("session_types",),
        aliases={"duration": "length"},
        derived=(Derived("length_minutes", "length", durations.minutes, "a duration"),),
    ),
    ModelSpec(
        name="sessions",
        table="sessions",
        record=records.SessionRecord,
        files=("sessions",),
        label="title",
        refs=(
            Ref("track", "tracks", column="track_id"),
            Ref("microlocation", "microlocations", column="microlocation_id"),
            Ref(
                "session_type", "session_types", column="session_type_id", inline_creates=True, shown=("name", "length")
            ),
            _SESSION_SIDE,
        ),
        media=(
            Media("slides_url", "slides/{id}/slides"),
            Media("audio_url", "audios/{id}/audio"),
            Media("video_url", "sessions/{id}/video"),
        ),
        aliases={
            **_TIMES,
            "slides": "slides_url",
            "audio": "audio_url",
            "video": "video_url",
            "type": "session_type",
            "format": "session_type",
            "room": "microlocation",
            # The reference server's current export writes the model's foreign-key columns.
            "track_id": "track",
            "microlocation_id": "microlocation",
            "session_type_id": "session_type",
            # Renamed in 2016 (open-event-server bd6e5947f, migration 591df081093e).
            "abstract": "short_abstract",
            "description": "long_abstract",
        },
    ),
)

BY_NAME: dict[str, ModelSpec] = {m.name: m for m in MODELS}
EVENT = BY_NAME["event"]
MEDIA_MODELS: tuple[ModelSpec, ...] = tuple(m for m in MODELS if m.media)  # what the media asset serves

# Files every archive may carry besides the models; read, not warned about.
KNOWN_AUXILIARY_FILES = ("meta",)


def upstream(spec: ModelSpec) -> list[str]:
    """Models whose id maps ``spec`` needs as inputs (foreign keys, links).

    A link is written with its owner, so a member's list of owners (a
    speaker's ``sessions``) does not make the member depend on the owner; an
    inverse list (a track's ``sessions``) is resolved while reading and needs
    no id map.
    """
    names = [r.target for r in spec.refs if not r.inverse and not (r.link and r.target == r.link.owner)]
    return list(dict.fromkeys(names))
