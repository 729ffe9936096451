"""Durations as the Open Event format writes them (a session type's ``length``)."""

from __future__ import annotations

import re

_DURATION = re.compile(r"^\s*(\d{1,3})\s*[:.]\s*(\d{1,2})\s*(?:h|hr|hrs|hour|hours)?\s*$", re.I)


def minutes(raw: str | None) -> int | None:
    """A duration in minutes, from the way the format writes them: "00:30", "00.30", "0.3", "1",
    "00.2 Hour"; None when ``raw`` is None or no such duration.

    The format's convention is hours and minutes (0.3 is half an hour), so a
    single fractional digit is tens of minutes.
    """
    if raw is None:
        return None
    text = raw.strip()
    if re.fullmatch(r"\d{1,3}", text):
        return int(text) * 60
    match = _DURATION.match(text)
    if not match:
        return None
    hours, tail = match.group(1), match.group(2)
    minutes_value = int(tail.ljust(2, "0"))
    if minutes_value >= 60:
        return None
    return int(hours) * 60 + minutes_value
