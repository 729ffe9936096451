"""The schedule report of one imported event, computed with pandas from the database rows.

Figures: sessions per day (in the event's time zone), per room and per track;
and the conflicts an organiser looks for: a speaker in two sessions at once,
a room booked twice at once, sessions outside the event's dates, sessions
without speakers. Sessions without both times take part in the counts per
room and track but not in the day counts or the overlap checks. Deleted rows
(``deleted_at`` set) are left out, as the reference server hides them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, tzinfo

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from event_pipeline.model import timezones
from event_pipeline.model.catalog import SESSION_SPEAKERS
from event_pipeline.model.schema import LINK_TABLES, TABLES

CONFLICT_COLUMNS = ["first", "second", "overlap_minutes"]


@dataclass
class ScheduleReport:
    """The report's tables (pandas DataFrames), each with the columns named in its comment."""

    event_name: str
    per_day: pd.DataFrame  # day (ISO date in the event's zone), sessions
    per_room: pd.DataFrame  # room, sessions, hours
    per_track: pd.DataFrame  # track, sessions
    speaker_overlaps: pd.DataFrame  # speaker, first, second, overlap_minutes (session titles)
    room_conflicts: pd.DataFrame  # room, first, second, overlap_minutes
    outside_event: pd.DataFrame  # session, starts_at, ends_at
    without_speakers: pd.DataFrame  # session

    @property
    def conflicts(self) -> dict[str, int]:
        """How many of each kind of problem the schedule has."""
        return {
            "speaker_overlaps": len(self.speaker_overlaps),
            "room_conflicts": len(self.room_conflicts),
            "outside_event": len(self.outside_event),
            "without_speakers": len(self.without_speakers),
        }


def _sessions(conn: Connection, event_id: int) -> pd.DataFrame:
    sessions, tracks, rooms = TABLES["sessions"], TABLES["tracks"], TABLES["microlocations"]
    query = (
        sa.select(
            sessions.c.id,
            sessions.c.title,
            sessions.c.starts_at,
            sessions.c.ends_at,
            tracks.c.name.label("track"),
            rooms.c.name.label("room"),
        )
        .select_from(
            sessions.outerjoin(tracks, tracks.c.id == sessions.c.track_id).outerjoin(
                rooms, rooms.c.id == sessions.c.microlocation_id
            )
        )
        .where(sessions.c.event_id == event_id, sessions.c.deleted_at.is_(None))
        .order_by(sessions.c.id)
    )
    frame = pd.DataFrame(conn.execute(query).all(), columns=["id", "title", "starts_at", "ends_at", "track", "room"])
    for column in ("starts_at", "ends_at"):
        # SQLite gives naive datetimes; every stored time is UTC (records._utc).
        frame[column] = pd.to_datetime(frame[column], utc=True)
    frame["title"] = frame["title"].fillna("(untitled)") + " [" + frame["id"].astype(str) + "]"
    return frame


def _links(conn: Connection, event_id: int) -> pd.DataFrame:
    link = SESSION_SPEAKERS
    table, sessions, speakers = LINK_TABLES[link.table], TABLES[link.owner], TABLES[link.member]
    query = (
        sa.select(table.c[link.owner_column].label("id"), speakers.c.name.label("speaker"), speakers.c.id.label("sid"))
        .select_from(
            table.join(sessions, sessions.c.id == table.c[link.owner_column]).join(
                speakers, speakers.c.id == table.c[link.member_column]
            )
        )
        .where(sessions.c.event_id == event_id, speakers.c.deleted_at.is_(None))
    )
    frame = pd.DataFrame(conn.execute(query).all(), columns=["id", "speaker", "sid"])
    frame["speaker"] = frame["speaker"].fillna("(unnamed)") + " [" + frame["sid"].astype(str) + "]"
    return frame.drop(columns="sid")


def _overlaps(frame: pd.DataFrame, by: str) -> pd.DataFrame:
    """Pairs of sessions sharing ``by`` (a speaker, a room) whose times overlap, each pair once."""
    timed = frame.dropna(subset=[by, "starts_at", "ends_at"])
    pairs = timed.merge(timed, on=by, suffixes=("_a", "_b"))
    pairs = pairs[pairs["id_a"] < pairs["id_b"]]
    start = pairs[["starts_at_a", "starts_at_b"]].max(axis=1)
    end = pairs[["ends_at_a", "ends_at_b"]].min(axis=1)
    pairs = pairs.assign(overlap_minutes=(end - start).dt.total_seconds() / 60)
    pairs = pairs[pairs["overlap_minutes"] > 0]
    out = pairs.rename(columns={"title_a": "first", "title_b": "second"})[[by, *CONFLICT_COLUMNS]]
    return out.astype({"overlap_minutes": int}).sort_values([by, "first", "second"]).reset_index(drop=True)


def schedule_report(conn: Connection, event_id: int) -> ScheduleReport:
    """The report of event ``event_id`` (database id). Raises LookupError if there is no such event."""
    events = TABLES["event"]
    event = conn.execute(
        sa.select(events.c.name, events.c.starts_at, events.c.ends_at, events.c.timezone).where(events.c.id == event_id)
    ).one_or_none()
    if event is None:
        raise LookupError(f"no event with id {event_id}")
    zone: tzinfo = (timezones.resolve(event.timezone) if event.timezone else None) or UTC
    sessions = _sessions(conn, event_id)
    links = _links(conn, event_id)
    timed = sessions.dropna(subset=["starts_at"])
    days = timed["starts_at"].dt.tz_convert(zone).dt.date.astype(str)
    per_day = timed.groupby(days).size().rename_axis("day").reset_index(name="sessions")
    hours = (sessions["ends_at"] - sessions["starts_at"]).dt.total_seconds() / 3600
    per_room = (
        sessions.assign(hours=hours, room=sessions["room"].fillna("(no room)"))
        .groupby("room")
        .agg(sessions=("id", "size"), hours=("hours", "sum"))
        .reset_index()
        .round({"hours": 2})
    )
    per_track = (
        sessions.assign(track=sessions["track"].fillna("(no track)"))
        .groupby("track")
        .size()
        .reset_index(name="sessions")
    )
    with_speakers = sessions.merge(links, on="id")
    start, end = pd.to_datetime(event.starts_at, utc=True), pd.to_datetime(event.ends_at, utc=True)
    outside = sessions.dropna(subset=["starts_at", "ends_at"])
    if pd.notna(start) and pd.notna(end):
        outside = outside[(outside["starts_at"] < start) | (outside["ends_at"] > end)]
    else:
        outside = outside.iloc[0:0]
    return ScheduleReport(
        event_name=event.name,
        per_day=per_day,
        per_room=per_room,
        per_track=per_track,
        speaker_overlaps=_overlaps(with_speakers, "speaker"),
        room_conflicts=_overlaps(sessions, "room"),
        outside_event=outside.rename(columns={"title": "session"})[["session", "starts_at", "ends_at"]].reset_index(
            drop=True
        ),
        without_speakers=sessions[~sessions["id"].isin(links["id"])]
        .rename(columns={"title": "session"})[["session"]]
        .reset_index(drop=True),
    )
