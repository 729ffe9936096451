"""The event's ``timezone`` field as a time zone, for times written without an offset.

Open Event exports give instants with an offset (``2016-03-18T09:30:00+08:00``),
but older ones, and data other tools wrote, give the event's local wall time
(``2017-03-19T12:00:00``) next to the event's ``timezone``; the reference
server's Event model stores an IANA name there (``app/models/event.py``,
``timezone = Column(String, default="UTC")``). Names are resolved in this
order:

1. an IANA name (``Asia/Singapore``, ``UTC``, ``US/Hawaii``), from the tz
   database (``tzdata`` where the system has none);
2. a Windows zone name (``Singapore Standard Time``), mapped to IANA by
   ``tzlocal``'s table of CLDR's mapping;
3. the informal names of :data:`INFORMAL` (``Hawaii-Aleutian``, seen in the
   Mozilla All Hands 2016 data of ``fossasia/open-event-wsgen``);
4. a fixed offset (``+08:00``, ``UTC+8``, ``GMT-10``).

Anything else is unknown: the caller warns and takes such times as UTC.
"""

from __future__ import annotations

import functools
import re
from datetime import UTC, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from tzlocal.windows_tz import win_tz

# Informal names found in real exports, and the IANA zone each one means. The
# US "Hawaii-Aleutian" time is UTC-10 without daylight saving in Hawaii, where
# events are (the Aleutian islands, America/Adak, observe it).
INFORMAL: dict[str, str] = {
    "hawaii-aleutian": "Pacific/Honolulu",
    "hawaii-aleutian standard time": "Pacific/Honolulu",
    "hawaii": "Pacific/Honolulu",
    "eastern": "America/New_York",
    "central": "America/Chicago",
    "mountain": "America/Denver",
    "pacific": "America/Los_Angeles",
    "alaska": "America/Anchorage",
}

_OFFSET = re.compile(r"^(?:UTC|GMT)?\s*([+-])\s*(\d{1,2})(?::?(\d{2}))?$", re.IGNORECASE)


@functools.lru_cache(maxsize=256)
def resolve(name: str | None) -> tzinfo | None:
    """The time zone a ``timezone`` value names, or None when it names none this module knows.

    ``None`` and ``""`` give None too; the caller tells "absent" from
    "unknown" by the value it passed.
    """
    if not isinstance(name, str) or not name.strip():
        return None
    text = name.strip()
    for candidate in (text, win_tz.get(text), INFORMAL.get(text.lower())):
        if candidate and _is_key(candidate):
            try:
                return ZoneInfo(candidate)
            except (ZoneInfoNotFoundError, ValueError, OSError):
                continue
    match = _OFFSET.match(text)
    if match:
        sign, hours, minutes = match.group(1), int(match.group(2)), int(match.group(3) or 0)
        if hours < 24 and minutes < 60:
            delta = timedelta(hours=hours, minutes=minutes)
            return timezone(-delta if sign == "-" else delta) if delta else UTC
    return None


def _is_key(candidate: str) -> bool:
    """ZoneInfo reads files: only plain zone keys may reach it (no '..', no absolute path, no NUL)."""
    return (
        not candidate.startswith("/")
        and ".." not in candidate
        and "\x00" not in candidate
        and re.fullmatch(r"[A-Za-z0-9_+\-/]+", candidate) is not None
    )
