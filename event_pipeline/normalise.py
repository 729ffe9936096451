"""Turn an archive's JSON, in whatever dialect, into one shape per model.

Keys are folded (``starts-at`` and ``starts_at`` are the same key), mapped by
the catalog's aliases, validated by the pydantic record models, and what is
left over is kept in ``extra``. Ids become canonical strings (``1`` and
``"1"`` are one id). References are checked against the ids the archive
really has, here, before anything is written.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from event_pipeline import dbsafe
from event_pipeline.archive import Archive
from event_pipeline.catalog import BY_NAME, EVENT, MODELS, ModelSpec, Ref
from event_pipeline.problems import Problems


@dataclass(slots=True)
class NormRecord:
    source_id: str
    source_key: str  # unique within the event: source_id, or "source_id#n" for repeats
    values: dict[str, Any]  # record fields (the table's columns)
    refs: dict[str, Any]  # ref field -> source id (or list of ids for many-refs)
    extra: dict[str, Any]
    inline: dict[str, dict] = field(default_factory=dict)  # ref field -> inline object


@dataclass
class Normalised:
    """Everything the loaders need, with every problem found on the way."""

    records: dict[str, list[NormRecord]] = field(default_factory=dict)
    links: list[tuple[str, str]] = field(default_factory=list)  # (session id, speaker id)
    meta: dict[str, Any] = field(default_factory=dict)
    problems: Problems = field(default_factory=Problems)

    @property
    def event(self) -> NormRecord | None:
        rows = self.records.get(EVENT.name) or []
        return rows[0] if rows else None


_MISSING = object()


def fold_key(key: str) -> str:
    return key.strip().replace("-", "_").replace(" ", "_").lower()


_INTEGER = re.compile(r"([+-]?)0*([0-9]+)")  # ASCII digits only: a full-width "１" is not the id 1


def canonical_id(value: Any) -> str | None:
    """An id as a canonical string, or None when it is unusable.

    ``7``, ``7.0``, ``"7"``, ``"+007"`` are one id, ``"7"``; digit strings are
    not converted to numbers, so a 5000-digit id stays text (validation then
    refuses it by the ``source_id`` column's length)."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else None
    if isinstance(value, str):
        text = value.strip()
        match = _INTEGER.fullmatch(text)
        if match:
            sign, digits = match.groups()
            return f"-{digits}" if sign == "-" and digits != "0" else digits
        return text or None
    return None


def reference_id(value: Any) -> tuple[str | None, bool]:
    """Parse a reference: ``{"id": 3}``, ``3``, ``"3"``; ``{}``/null mean none.

    Returns (id, usable): usable is False when a value is present but cannot
    be an id, so the caller can warn.
    """
    if isinstance(value, dict):
        value = value.get("id")
    if value is None:
        return None, True
    ref = canonical_id(value)
    return ref, ref is not None


_DURATION = re.compile(r"^\s*(\d{1,3})\s*[:.]\s*(\d{1,2})\s*(?:h|hr|hrs|hour|hours)?\s*$", re.I)


def parse_length_minutes(raw: str | None) -> int | None:
    """Durations as the format writes them: "00:30", "00.30", "0.3", "1", "00.2 Hour".

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
    hours, minutes = match.group(1), match.group(2)
    minutes_value = int(minutes.ljust(2, "0"))
    if minutes_value >= 60:
        return None
    return int(hours) * 60 + minutes_value


class _ModelNormaliser:
    """Normalises the records of one model file."""

    def __init__(self, spec: ModelSpec, file: str, problems: Problems):
        self.spec = spec
        self.file = file
        self.problems = problems
        self.ref_fields = {r.field: r for r in spec.refs}
        self.fields = spec.record.model_fields
        self.strict = set(spec.required) | {spec.label}
        self.validator = spec.record.__pydantic_validator__
        self.not_text = {name for name, info in self.fields.items() if info.annotation not in (str, str | None)}
        self.names: dict[str, str] = {}  # source key -> field name; archives repeat a handful of keys

    def record(self, raw: Any, index: int) -> NormRecord | None:
        if not isinstance(raw, dict):
            self.problems.error(self.file, f"record #{index + 1} is not an object but {type(raw).__name__}")
            return None
        source_id = canonical_id(raw.get("id"))
        if source_id is None:
            what = "missing" if raw.get("id") is None else f"unusable ({raw.get('id')!r})"
            self.problems.error(self.file, f"record #{index + 1}: id is {what}", field="id")
            return None
        values: dict[str, Any] = {}
        origin: dict[str, str] = {}
        refs: dict[str, Any] = {}
        extra: dict[str, Any] = {}
        inline: dict[str, dict] = {}
        names = self.names
        for key, value in raw.items():
            if key == "id":
                continue
            name = names.get(key)
            if name is None:
                folded = fold_key(key)
                name = names[key] = self.spec.aliases.get(folded, folded)
            if name in self.ref_fields:
                ref = self.ref_fields[name]
                refs[name] = self._reference(ref, value, source_id)
                if ref.inline_creates and isinstance(value, dict) and len(value) > 1:
                    inline[name] = value
            elif name in self.fields and name not in origin:
                values[name] = value
                origin[name] = key
            elif name in self.fields and values.get(name) is None:
                extra[origin[name]] = values[name]  # an earlier alias was empty: keep it
                values[name], origin[name] = value, key
            else:
                extra[key] = value
        if not self._validate(values, origin, extra, source_id):
            return None
        return NormRecord(source_id, source_id, values, refs, extra, inline)

    def _reference(self, ref: Ref, value: Any, source_id: str) -> Any:
        if not ref.many:
            target, usable = reference_id(value)
            if not usable:
                self.problems.warn(self.file, f"unusable reference {value!r}; link left empty", source_id, ref.field)
            return target
        if value is None:
            return []
        if not isinstance(value, list):
            value = [value]
        targets = []
        for item in value:
            target, usable = reference_id(item)
            if target is not None:
                targets.append(target)
            elif not usable:
                self.problems.warn(self.file, f"unusable reference {item!r}; link left empty", source_id, ref.field)
        return targets

    def _validate(self, values: dict, origin: dict, extra: dict, source_id: str) -> bool:
        for name in self.spec.required:
            if values.get(name) is None:
                self.problems.error(self.file, "required field is missing", source_id, name)
                return False
        for name, value in values.items():
            if value == "" and name in self.not_text:
                values[name] = None  # an empty string for a number or a date means "not set"
        while True:
            try:
                model = self.validator.validate_python(values)
            except ValidationError as exc:
                failed = {str(err["loc"][0]): err["msg"] for err in exc.errors() if err["loc"]}
                if not failed:
                    raise
                fatal = False
                for name, message in failed.items():
                    if name in self.strict:
                        self.problems.error(self.file, f"{message} (got {values[name]!r:.60})", source_id, name)
                        fatal = True
                    else:
                        self.problems.warn(self.file, f"{message}; raw value kept in extra", source_id, name)
                        extra[origin[name]] = values.pop(name)
                if fatal:
                    return False
                continue
            values.clear()
            values.update(model.__dict__)
            return True


def _model_documents(archive: Archive, spec: ModelSpec, problems: Problems) -> tuple[str, Iterable] | None:
    """The raw records of a model, from its own file (streamed when it is an array) or the event."""
    for name in spec.files:
        if name in archive.members:
            document = archive.records(name)
            if not archive.parsed(name):
                return None  # invalid JSON: already reported
            if isinstance(document, dict) and isinstance(document.get(spec.name), list):
                document = document[spec.name]  # {"sessions": [...]} wrapper
            if not isinstance(document, (list, Iterator)):
                problems.error(name, f"expected a list of records, got {type(document).__name__}")
                return None
            return name, document
    event = archive.document(EVENT.files[0])
    if isinstance(event, dict):
        for key, value in event.items():
            if fold_key(key) in spec.embedded_in_event and isinstance(value, list):
                return f"{archive.members.get('event', 'event')}:{key}", value
    return None


def normalise(archive: Archive) -> Normalised:
    """Normalise every model of the archive and cross-check references."""
    out = Normalised(problems=archive.problems)
    problems = out.problems
    meta = archive.document("meta")
    out.meta = meta if isinstance(meta, dict) else {}
    event_doc = archive.document("event")
    if "event" not in archive.members:
        problems.error("event", "the archive has no event file")
    elif archive.parsed("event") and not isinstance(event_doc, dict):
        problems.error("event", f"event must be a JSON object, got {type(event_doc).__name__}")
    elif isinstance(event_doc, dict):
        embedded = {fold_key(k) for m in MODELS for k in m.embedded_in_event}
        document = {k: v for k, v in event_doc.items() if fold_key(k) not in embedded}
        record = _ModelNormaliser(EVENT, "event", problems).record(document, 0)
        out.records[EVENT.name] = [record] if record else []
    for spec in MODELS[1:]:
        found = _model_documents(archive, spec, problems)
        records: list[NormRecord] = []
        if found:
            file, raw_records = found
            normaliser = _ModelNormaliser(spec, file, problems)
            records = [r for i, raw in enumerate(raw_records) if (r := normaliser.record(raw, i))]
            records = _dedupe(records, file, problems)
        out.records[spec.name] = records
    archive.check_unread()
    _inline_records(out)
    _parse_lengths(out)
    # What the database would refuse (column ranges, key lengths, NUL, surrogates, JSON): errors here.
    dbsafe.check_records(out.records, problems, strings=archive.odd_text)
    _check_references(out)
    return out


def _dedupe(records: list[NormRecord], file: str, problems: Problems) -> list[NormRecord]:
    """Identical repeats are dropped; different records sharing an id are all kept, the repeats under a
    generated key ``id#n`` that is no real id of the model (a record may be called "1#2" itself)."""
    seen: dict[str, list[NormRecord]] = {}
    taken = {record.source_id for record in records}
    kept = []
    for record in records:
        same_id = seen.setdefault(record.source_id, [])
        if any(r.values == record.values and r.refs == record.refs and r.extra == record.extra for r in same_id):
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


def _inline_records(out: Normalised) -> None:
    """Records given only inline (a session's session type) become records of the event."""
    for spec in MODELS:
        for ref in (r for r in spec.refs if r.inline_creates):
            target = BY_NAME[ref.target]
            known = {r.source_id for r in out.records[target.name]}
            normaliser = _ModelNormaliser(target, spec.files[0], out.problems)
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


def _parse_lengths(out: Normalised) -> None:
    for record in out.records["session_types"]:
        raw = record.values.get("length")
        minutes = parse_length_minutes(raw)
        record.values["length_minutes"] = minutes
        if raw not in (None, "") and minutes is None:
            out.problems.warn(
                "session_types", f"length {raw!r} is not a duration; kept as text", record.source_id, "length"
            )


def _check_references(out: Normalised) -> None:
    """Dangling references become warnings and empty links; links are the union of both sides."""
    ids = {name: {r.source_id for r in rows} for name, rows in out.records.items()}
    links: dict[tuple[str, str], None] = {}
    for spec in MODELS:
        for record in out.records.get(spec.name, []):
            for ref in spec.refs:
                value = record.refs.get(ref.field)
                if ref.many:
                    for target in value or []:
                        if target not in ids[ref.target]:
                            out.problems.warn(
                                spec.files[0],
                                f"refers to {ref.target} id {target}, which the archive lacks; link skipped",
                                record.source_id,
                                ref.field,
                            )
                        elif spec.name == "sessions":
                            links[(record.source_id, target)] = None
                        else:
                            links[(target, record.source_id)] = None
                elif value is not None and value not in ids[ref.target]:
                    out.problems.warn(
                        spec.files[0],
                        f"refers to {ref.target} id {value}, which the archive lacks; link left empty",
                        record.source_id,
                        ref.field,
                    )
                    record.refs[ref.field] = None
    out.links = list(links)
