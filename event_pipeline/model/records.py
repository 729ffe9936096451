"""Pydantic record models: one per Open Event record type.

The fields are the database columns (the reference server's snake_case
names); the catalog derives the tables from these models, so a column is
declared once. Source dialects are mapped onto these names by the aliases in
``catalog.py`` before validation; whatever is not a field here lands in the
row's ``extra`` JSON column.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, ValidationInfo


def _json_text(value: Any) -> Any:
    """Forms are JSON documents stored as text; accept them as objects too."""
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True, ensure_ascii=False)
    return value


JsonText = Annotated[str | None, BeforeValidator(_json_text)]


def _utc(value: datetime | None, info: ValidationInfo) -> datetime | None:
    """Instants are stored in UTC, so SQLite (no zone support) and PostgreSQL agree.

    A time without an offset is a wall time of the event's zone, passed as the
    validation context's ``tz`` (see ``timezones.py``); without one it is
    taken as UTC. Raises ValueError (a validation error, located by pydantic)
    when the instant falls outside what ``datetime`` holds once converted
    (``0001-01-01T00:00:00+01:00``).
    """
    if value is None:
        return None
    try:
        if value.tzinfo is None:
            zone = None
            if info.context is not None:
                zone = info.context.get("tz")
                info.context["naive"] = info.context.get("naive", 0) + 1  # counted, to say so once
            return value.replace(tzinfo=zone or UTC).astimezone(UTC)
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError(f"{value.isoformat()} is out of range once converted to UTC") from None


# Only on timestamp fields: a validator on every field ran millions of times for a large archive.
UtcDatetime = Annotated[datetime | None, AfterValidator(_utc)]


class Record(BaseModel):
    """Common behaviour: lax coercion of numbers to text; ``deleted_at``, the reference server's soft
    delete (every model has it, and its export writes soft-deleted rows too)."""

    model_config = ConfigDict(coerce_numbers_to_str=True, extra="forbid")

    deleted_at: UtcDatetime = None


class EventRecord(Record):
    name: str
    description: str | None = None
    location_name: str | None = None
    searchable_location_name: str | None = None
    latitude: float | None = None
    longitude: float | None = None
    starts_at: UtcDatetime = None
    ends_at: UtcDatetime = None
    timezone: str | None = None
    logo_url: str | None = None
    original_image_url: str | None = None
    organizer_name: str | None = None
    organizer_description: str | None = None
    external_event_url: str | None = None
    ticket_url: str | None = None
    privacy: str | None = None
    event_type: str | None = None
    topic: str | None = None
    sub_topic: str | None = None
    code_of_conduct: str | None = None
    copyright: dict | None = None
    speakers_call: dict | None = None
    email: str | None = None
    state: str | None = None
    schedule_published_on: UtcDatetime = None
    is_sessions_speakers_enabled: bool | None = None


class SocialLinkRecord(Record):
    name: str | None = None
    link: str | None = None


class CustomFormRecord(Record):
    """Two generations: one record holding the session and speaker forms as JSON documents (the 2016
    exports), or one record per form field (the reference server's ``CustomForms`` model since 2017)."""

    session_form: JsonText = None
    speaker_form: JsonText = None
    form: str | None = None  # "session", "speaker", "attendee"
    field_identifier: str | None = None
    name: str | None = None
    type: str | None = None
    description: str | None = None
    is_required: bool | None = None
    is_included: bool | None = None
    is_fixed: bool | None = None
    is_public: bool | None = None
    is_complex: bool | None = None
    position: int | None = None


class MicrolocationRecord(Record):
    name: str | None = None
    latitude: float | None = None
    longitude: float | None = None
    floor: int | None = None
    room: str | None = None
    position: int | None = None
    hidden_in_scheduler: bool | None = None


class SponsorRecord(Record):
    name: str | None = None
    description: str | None = None
    url: str | None = None
    level: str | None = None
    sponsor_type: str | None = None
    logo_url: str | None = None


class SpeakerRecord(Record):
    name: str | None = None
    email: str | None = None
    mobile: str | None = None
    photo_url: str | None = None
    organisation: str | None = None
    position: str | None = None
    country: str | None = None
    city: str | None = None
    gender: str | None = None
    short_biography: str | None = None
    long_biography: str | None = None
    speaking_experience: str | None = None
    website: str | None = None
    twitter: str | None = None
    facebook: str | None = None
    github: str | None = None
    linkedin: str | None = None
    is_featured: bool | None = None


class TrackRecord(Record):
    name: str | None = None
    description: str | None = None
    color: str | None = None
    font_color: str | None = None
    track_image_url: str | None = None
    position: int | None = None


class SessionTypeRecord(Record):
    name: str | None = None
    length: str | None = None  # as the archive gives it ("00:30", "0.3", "00.2 Hour")
    length_minutes: int | None = None  # parsed from ``length`` where possible
    position: int | None = None


class SessionRecord(Record):
    title: str | None = None
    subtitle: str | None = None
    short_abstract: str | None = None
    long_abstract: str | None = None
    comments: str | None = None
    starts_at: UtcDatetime = None
    ends_at: UtcDatetime = None
    language: str | None = None
    level: str | None = None
    state: str | None = None
    signup_url: str | None = None
    slides_url: str | None = None
    audio_url: str | None = None
    video_url: str | None = None
