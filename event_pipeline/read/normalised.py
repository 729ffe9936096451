"""The read stage's output: one shape per model, the links, and every problem found."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from event_pipeline.model.catalog import EVENT
from event_pipeline.problems import Problems


@dataclass(slots=True)
class NormRecord:
    """One record, normalised: its fields, references and the rest (``extra``)."""

    source_id: str
    source_key: str  # unique within the event: source_id, or "source_id#n" for repeats
    values: dict[str, Any]  # record fields (the table's columns)
    refs: dict[str, Any]  # ref field -> source id (or list of ids for many-refs)
    extra: dict[str, Any]
    inline: dict[str, dict] = field(default_factory=dict)  # ref field -> inline object
    # ref field -> (source key, raw value): put back into ``extra`` if the reference does not resolve
    raw_refs: dict[str, tuple[str, Any]] | None = None


@dataclass
class Normalised:
    """Everything the loaders need, with every problem found on the way.

    ``unmapped``: per data file, the source fields that are no column nor
    reference, kept in each record's ``extra``, with how many records have
    them: ``{"sessions": {"abstract": 491}}``.
    """

    records: dict[str, list[NormRecord]] = field(default_factory=dict)
    links: dict[str, list[tuple[str, str]]] = field(default_factory=dict)  # link table -> (owner id, member id)
    problems: Problems = field(default_factory=Problems)
    unmapped: dict[str, dict[str, int]] = field(default_factory=dict)
    shape: dict[str, Any] | None = None  # how the archive wrote its records (``shape.py``), for the export

    @property
    def event(self) -> NormRecord | None:
        rows = self.records.get(EVENT.name) or []
        return rows[0] if rows else None
