"""Turn an archive's JSON, in whatever dialect, into one shape per model.

Keys are folded (``starts-at`` and ``starts_at`` are the same key), mapped by
the catalog's aliases, validated by the pydantic record models, and what is
left over is kept in ``extra``. Ids become canonical strings (``1`` and
``"1"`` are one id). References are checked against the ids the archive
really has, here, before anything is written. The parts: ``envelopes`` (where
the records sit), ``record_normaliser`` (one record), ``references``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import tzinfo
from typing import Any, NamedTuple

from event_pipeline.model import timezones
from event_pipeline.model.catalog import BY_NAME, EVENT, MODELS, ModelSpec
from event_pipeline.problems import Problems
from event_pipeline.read import shape as shapes
from event_pipeline.read import storable
from event_pipeline.read.data_files import Archive
from event_pipeline.read.envelopes import event_file, included_by_model, model_documents, one_event, resource_record
from event_pipeline.read.fields import canonical_id, fold_key
from event_pipeline.read.normalised import Normalised, NormRecord
from event_pipeline.read.record_normaliser import DERIVED, ModelNormaliser
from event_pipeline.read.references import check_references
from event_pipeline.read.spill import BodySpill

__all__ = ["Normalised", "NormRecord", "normalise"]


class _Reading(NamedTuple):
    """What every normaliser of one archive shares: the spill its records' bodies go to, and whether
    the archive's strings may hold NUL or a surrogate so far (``Archive.odd_text``)."""

    spill: BodySpill
    strings: Callable[[], bool]


def normalise(archive: Archive) -> Normalised:
    """Normalise every model of the archive and cross-check references.

    Returns the records of every model, the links, and the problems (errors
    and warnings, all of them: nothing stops at the first); raises nothing
    for bad input.
    """
    spill = BodySpill()
    out = Normalised(problems=archive.problems, spill=spill)
    problems = out.problems
    read = _Reading(spill, lambda: archive.odd_text)
    for spec in MODELS:
        if spec.required_file and not any(name in archive.members for name in spec.files):
            problems.error(spec.files[0], f"the archive has no {spec.name} file")
    included: list = []  # JSON:API compound documents' "included" resources
    id_texts: dict[int, str] = {}  # one string per integer id of the archive (see ModelNormaliser)
    normalisers, tz, event_id = _read_event(archive, out, included, id_texts, read)
    without_file: list[ModelSpec] = []
    known: dict[str, set[str]] = {}  # model -> its records' ids, once read
    for spec in MODELS[1:]:
        found = model_documents(archive, spec, problems, included)
        if found is None:
            without_file.append(spec)
            out.records[spec.name] = []
            continue
        file, raw_records = found
        normaliser = ModelNormaliser(spec, file, problems, tz, event_id, known, id_texts, *read)
        normalisers.append(normaliser)
        out.records[spec.name] = _read_records(normaliser, raw_records, out)
        known[spec.name] = {r.source_id for r in out.records[spec.name]}
    for spec, file, resources in included_by_model(included, without_file):
        normaliser = ModelNormaliser(spec, file, problems, tz, event_id, None, None, *read)
        normalisers.append(normaliser)
        out.records[spec.name] = _read_records(normaliser, (resource_record(r) for r in resources), out)
    if normalisers and normalisers[0].spec is EVENT:
        normalisers[0].finish(out.unmapped)
    meta = archive.document("meta") if "meta" in archive.members else None  # before check_unread drops it
    archive.check_unread()
    _naive_times(normalisers, tz, event_file(archive), problems)
    _inline_records(out, tz, read)
    _report(out, DERIVED)
    # What the database would refuse (column ranges, key lengths, NUL, surrogates, JSON): errors here.
    storable.check_records(out.records, problems, strings=archive.odd_text)  # and what each record had
    check_references(out)
    out.shape = shapes.describe(archive, normalisers, out, fold_key, meta)
    return out


def _read_event(
    archive: Archive, out: Normalised, included: list, id_texts: dict[int, str], read: _Reading
) -> tuple[list[ModelNormaliser], tzinfo | None, str | None]:
    """The event record (its own embedded lists left to their models): the normalisers so far, the
    event's time zone and its source id."""
    file = event_file(archive)
    if file not in archive.members or not archive.parsed(file):
        return [], None, None
    event = one_event(archive.document(file), file, out.problems, included)
    if event is None:
        return [], None, None
    embedded = {fold_key(k) for m in MODELS for k in m.embedded_in_event}
    document = {k: v for k, v in event.items() if fold_key(k) not in embedded}
    tz = _event_zone(document, file, out.problems)
    normaliser = ModelNormaliser(EVENT, file, out.problems, tz, None, None, id_texts, *read)
    record = normaliser.record(document, 0)
    out.records[EVENT.name] = [record] if record else []
    event_id = record.source_id if record else canonical_id(document.get("id"))
    return [normaliser], tz, event_id


def _read_records(normaliser: ModelNormaliser, raw_records: Iterable[Any], out: Normalised) -> list[NormRecord]:
    records = [r for i, raw in enumerate(raw_records) if (r := normaliser.record(raw, i))]
    normaliser.finish(out.unmapped)
    return _dedupe(records, normaliser.file, out.problems)


def _event_zone(event: dict[str, Any], file: str, problems: Problems) -> tzinfo | None:
    """The zone of the event's times written without an offset; an unknown name is a warning."""
    name = next((v for k, v in event.items() if fold_key(k) == "timezone"), None)
    tz = timezones.resolve(name) if isinstance(name, str) else None  # a list or number names no zone
    blank = name is None or (isinstance(name, str) and not name.strip())
    if tz is None and not blank:
        problems.warn(
            file,
            f"time zone {name!r:.80} is unknown; times without an offset are taken as UTC",
            canonical_id(event.get("id")),
            "timezone",
        )
    return tz


def _naive_times(normalisers: list[ModelNormaliser], tz: tzinfo | None, file: str, problems: Problems) -> None:
    """Say once that times without an offset were taken as UTC, when the event names no zone."""
    naive = sum(n.context["naive"] for n in normalisers)
    if naive and tz is None and not any(p.field == "timezone" for p in problems.warnings):
        problems.warn(
            file,
            f"{naive} time{'s' if naive != 1 else ''} without an offset and no event time zone; taken as UTC",
            field="timezone",
        )


def _dedupe(records: list[NormRecord], file: str, problems: Problems) -> list[NormRecord]:
    """Identical repeats are dropped; different records sharing an id are all kept, the repeats under a
    generated key ``id#n`` that is no real id of the model (a record may be called "1#2" itself)."""
    seen: dict[str, list[NormRecord]] = {}
    taken = {record.source_id for record in records}
    kept = []
    for record in records:
        same_id = seen.setdefault(record.source_id, [])
        if any(r.refs == record.refs and r.body() == record.body() for r in same_id):
            problems.warn(file, "record repeated with identical content; imported once", record.source_id)
            continue
        if same_id:
            n = len(same_id) + 1
            while f"{record.source_id}#{n}" in taken:
                n += 1
            record.source_key = f"{record.source_id}#{n}"
            taken.add(record.source_key)
            problems.warn(
                file,
                f"another record has the same id; imported as {record.source_key!r}, references resolve to the first",
                record.source_id,
            )
        same_id.append(record)
        kept.append(record)
    return kept


def _inline_records(out: Normalised, tz: tzinfo | None, read: _Reading) -> None:
    """Records given only inline (a session's session type) become records of the event.

    Only an inline object with a usable id names a record (an object without
    one was already kept in ``extra`` with a warning); problems name the
    parent record, in the parent's file.
    """
    for spec in MODELS:
        for ref in (r for r in spec.refs if r.inline_creates):
            target = BY_NAME[ref.target]
            known = {r.source_id for r in out.records[target.name]}
            normaliser = ModelNormaliser(target, spec.files[0], out.problems, tz, None, None, None, *read)
            for record in out.records[spec.name]:
                inline = record.inline.get(ref.field)
                if inline is None or record.refs.get(ref.field) in known:
                    continue
                created = normaliser.record(inline, 0)
                if created is None:
                    continue
                known.add(created.source_id)
                out.records[target.name].append(created)
                out.problems.warn(
                    spec.files[0],
                    f"{ref.field} {created.source_id} defined only inline; created from it",
                    record.source_id,
                    ref.field,
                )


def _report(out: Normalised, stage: str) -> None:
    """Report the problems of ``stage`` its records kept when they were read (``NormRecord.pending``), in
    the records' order: the derived columns' (``ModelNormaliser._derive``) after the inline records'."""
    for rows in out.records.values():
        for record in rows:
            if record.pending:
                record.report_pending(stage, out.problems)
