"""The read stage's output: one shape per model, the links, and every problem found."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from event_pipeline.model.catalog import EVENT
from event_pipeline.problems import Problems
from event_pipeline.read.spill import BodySpill, body_digest


class NormRecord:
    """One record, normalised: its fields (``values``: the table's columns), its references (``refs``: ref
    field -> source id, or a list of ids for list references) and the rest (``extra``).

    ``source_key`` is unique within the event: the source id, or ``"<id>#<n>"`` for a repeat.
    ``inline``: ref field -> the inline object that may create its target; ``raw_refs``: ref field ->
    (source key, raw value), put back into ``extra`` if the reference does not resolve; ``pending``:
    problems found when the record was read, reported by the stage they belong to
    (:meth:`report_pending`) so the report keeps its order whatever the reading order.

    The body (``values`` and ``extra``) is in memory until :meth:`spill` moves it to a
    :class:`~event_pipeline.read.spill.BodySpill`; then ``values`` and ``extra`` read a new copy each
    time, so a change is made with :meth:`replace`, and :meth:`value` answers the fields named when it
    was spilled (the media columns, the label) without reading the body. ``raw_refs`` is spilled too (a
    speaker's ``sessions`` objects, kept until sessions are read: a third of the memory left otherwise).
    """

    __slots__ = (
        "source_id",
        "source_key",
        "refs",
        "inline",
        "_raw_refs",
        "pending",
        "_body",
        "_spill",
        "_keep",
        "_kept",
    )

    def __init__(
        self,
        source_id: str,
        source_key: str,
        values: dict[str, Any],
        refs: dict[str, Any],
        extra: dict[str, Any],
        inline: dict[str, dict] | None = None,
        raw_refs: dict[str, tuple[str, Any]] | None = None,
    ):
        self.source_id = source_id
        self.source_key = source_key
        self.refs = refs
        self.inline = inline or _NO_INLINE
        self._raw_refs: Any = raw_refs  # or, spilled, its number in ``_spill``
        self.pending: list[tuple[str, str, str, str, str | None, str]] | None = None
        self._body: Any = (values, extra)  # (values, extra), or the body's number in ``_spill``
        self._spill: BodySpill | None = None
        # Once spilled: the fields kept in memory (``_keep``, the normaliser's one tuple of names) and their
        # values (``_kept``, a tuple in the same order: 48-56 bytes, where a dict was 184, ~190 MiB at 1M).
        self._keep: tuple[str, ...] = ()
        self._kept: tuple[Any, ...] | None = None

    @property
    def raw_refs(self) -> dict[str, tuple[str, Any]] | None:
        if type(self._raw_refs) is int:
            assert self._spill is not None  # spilled with the body
            return self._spill.load(self._raw_refs)
        return self._raw_refs

    @raw_refs.setter
    def raw_refs(self, value: dict[str, tuple[str, Any]] | None) -> None:
        self._raw_refs = value

    @property
    def values(self) -> dict[str, Any]:
        return self.body()[0]

    @property
    def extra(self) -> dict[str, Any]:
        return self.body()[1]

    def body(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """``(values, extra)``, read once (from the spill if spilled)."""
        if self._spill is None:
            return self._body
        return self._spill.load(self._body)

    def value(self, name: str) -> Any:
        """The field ``name`` (None if absent), without reading a spilled body when it was kept."""
        if self._spill is None:
            return self._body[0].get(name)
        if self._kept is not None and name in self._keep:
            return self._kept[self._keep.index(name)]
        return self.values.get(name)

    def digest(self) -> bytes:
        """The 20-byte :func:`~event_pipeline.read.spill.body_digest` of the body."""
        if self._spill is None:
            return body_digest(*self._body)
        return self._spill.digest(self._body)

    def spill(self, spill: BodySpill, keep: tuple[str, ...] = (), times: tuple[str, ...] = ()) -> None:
        """Move the body to ``spill``, keeping the fields ``keep`` in memory (see :meth:`value`); ``times``:
        the fields holding a ``datetime`` (``BodySpill.add``)."""
        values, extra = self.body()
        self._keep = keep
        self._kept = tuple(values.get(name) for name in keep) if keep else None
        self._body = spill.add(values, extra, times)
        if self._raw_refs:  # the raw values of references not resolved yet: needed only if they never are
            self._raw_refs = spill.add_object(self._raw_refs)
        self._spill = spill

    def replace(self, values: dict[str, Any] | None = None, extra: dict[str, Any] | None = None) -> None:
        """Give the record a new body (the fields, ``extra``, or both); a spilled one is stored again."""
        old_values, old_extra = self.body()
        values = old_values if values is None else values
        extra = old_extra if extra is None else extra
        if self._spill is None:
            self._body = (values, extra)
            return
        if self._kept is not None:
            self._kept = tuple(values.get(name) for name in self._keep)
        self._body = self._spill.add(values, extra, self._spill.times(self._body))

    def add_pending(self, severity: str, stage: str, file: str, message: str, field: str | None) -> None:
        """Keep a problem of this record (``severity``: ``error`` or ``warn``) for its ``stage`` to report."""
        if self.pending is None:
            self.pending = []
        self.pending.append((stage, severity, file, message, field, self.source_id))

    def report_pending(self, stage: str, problems: Problems) -> None:
        """Report this record's pending problems of ``stage``, in the order found."""
        if not self.pending:
            return
        for found_stage, severity, file, message, field_name, source_id in self.pending:
            if found_stage == stage:
                (problems.error if severity == "error" else problems.warn)(file, message, source_id, field_name)
        self.pending = [p for p in self.pending if p[0] != stage] or None

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, NormRecord):
            return NotImplemented
        return (self.source_id, self.source_key, self.body(), self.refs, self.inline, self.raw_refs) == (
            other.source_id,
            other.source_key,
            other.body(),
            other.refs,
            other.inline,
            other.raw_refs,
        )

    __hash__ = None  # type: ignore[assignment]  # mutable, like the dataclass it was

    def __repr__(self) -> str:
        return f"NormRecord({self.source_id!r}, {self.source_key!r}, refs={self.refs!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        values, extra = self.body()  # a pickled record carries its body, never its spill
        return (_restored, (self.source_id, self.source_key, values, self.refs, extra, self.inline, self.raw_refs))


_NO_INLINE: dict[str, dict] = {}  # shared by every record without inline objects (nearly all): never changed


def _restored(source_id, source_key, values, refs, extra, inline, raw_refs) -> NormRecord:  # noqa: ANN001
    return NormRecord(source_id, source_key, values, refs, extra, dict(inline) or None, raw_refs)


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
    spill: BodySpill | None = field(default=None, repr=False)  # where the records' bodies are (``spill.py``)

    def close(self) -> None:
        """Free the records' bodies (the spill's temporary file) now rather than when collected: an import
        ends with this, so a long-lived process (a Celery worker, the API) keeps no file per import.
        A body read afterwards raises ValueError."""
        if self.spill is not None:
            self.spill.close()

    @property
    def event(self) -> NormRecord | None:
        rows = self.records.get(EVENT.name) or []
        return rows[0] if rows else None
