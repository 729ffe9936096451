"""The nine Open Event models, described once.

Everything else (tables, assets, normalisation, loading, media) is generated
from :data:`MODELS`. The order of the tuple is the reference server's import
order; each model's ``refs`` name the models it points at, which become the
asset dependencies.
"""

from __future__ import annotations

from event_pipeline.model import durations, records
from event_pipeline.model.spec import Derived, Link, Media, ModelSpec, Ref, link_refs

__all__ = [
    "BY_NAME",
    "EVENT",
    "KNOWN_AUXILIARY_FILES",
    "LINKS",
    "MEDIA_MODELS",
    "MODELS",
    "PARENT_FIELDS",
    "SESSION_SPEAKERS",
    "Derived",
    "Link",
    "Media",
    "ModelSpec",
    "Ref",
    "upstream",
]


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
        media=(Media("logo_url"), Media("original_image_url")),
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
        media=(Media("logo_url"),),
        aliases={"logo": "logo_url", "type": "sponsor_type"},
        export_names={"kebab": {"sponsor_type": "type"}, "snake": {"sponsor_type": "type"}},
    ),
    ModelSpec(
        name="speakers",
        table="speakers",
        record=records.SpeakerRecord,
        files=("speakers",),
        media=(Media("photo_url"),),
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
        media=(Media("track_image_url"),),
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
            Media("slides_url"),
            Media("audio_url"),
            Media("video_url"),
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
