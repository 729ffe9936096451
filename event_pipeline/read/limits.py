"""Bounds on what an archive may make the reader read and report, each an environment setting.

:class:`Limits` holds them (``EVENT_PIPELINE_<NAME>``, e.g. ``EVENT_PIPELINE_MAX_MEMBERS``,
read by :meth:`Limits.from_env`): members, bytes (per member, in total, per JSON
file), the compression ratio, JSON nesting depth (capped at ``JSON_DEPTH_CEILING``),
and how many problems are kept and listed.
"""

from __future__ import annotations

from dataclasses import dataclass

from event_pipeline import settings
from event_pipeline.problems import DEFAULT_KEEP


@dataclass(frozen=True)
class Limits:
    """Bounds on what an archive may make us read and report; each is an env setting
    (``EVENT_PIPELINE_<NAME>``, e.g. ``EVENT_PIPELINE_MAX_MEMBERS``)."""

    max_members: int = 20_000  # every member, ignored ones (__MACOSX/...) included
    max_member_bytes: int = 1 << 30
    max_total_bytes: int = 4 << 30
    max_json_bytes: int = 256 << 20
    max_ratio: int = 200  # uncompressed / compressed, for members over 1 MiB
    max_json_depth: int = 64  # arrays and objects nested in a data file, counted from its top level
    max_problems: int = DEFAULT_KEEP  # problems of each severity kept (and stored in import_jobs); all are counted
    max_problems_listed: int = 50  # problems of each severity in a result line; the rest are counted by kind

    def __post_init__(self) -> None:
        # Python's parser, pickling and the JSON encoder recurse once per level: past a few hundred
        # levels they raise RecursionError, so the setting cannot go beyond what they survive.
        object.__setattr__(self, "max_json_depth", min(self.max_json_depth, JSON_DEPTH_CEILING))

    @classmethod
    def from_env(cls) -> Limits:
        """The limits the settings give (:class:`event_pipeline.settings.Settings`); raises
        :class:`~event_pipeline.settings.SettingsError` for a value that is not a whole number."""
        configured = settings.current()
        return cls(**{name: getattr(configured, name) for name in cls.__dataclass_fields__})

    def hint(self, name: str) -> str:
        return f"limit {name}={getattr(self, name)}; raise it with EVENT_PIPELINE_{name.upper()}"


JSON_DEPTH_CEILING = 200
