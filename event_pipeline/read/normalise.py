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
from datetime import tzinfo
from typing import Any

from pydantic import ValidationError

from event_pipeline.model import timezones
from event_pipeline.model.catalog import BY_NAME, EVENT, MODELS, PARENT_FIELDS, ModelSpec, Ref
from event_pipeline.problems import Problems
from event_pipeline.read import shape as shapes
from event_pipeline.read import storable
from event_pipeline.read.archive import Archive


@dataclass(slots=True)
class NormRecord:
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
    links: list[tuple[str, str]] = field(default_factory=list)  # (session id, speaker id)
    problems: Problems = field(default_factory=Problems)
    unmapped: dict[str, dict[str, int]] = field(default_factory=dict)
    shape: dict[str, Any] | None = None  # how the archive wrote its records (``shape.py``), for the export

    @property
    def event(self) -> NormRecord | None:
        rows = self.records.get(EVENT.name) or []
        return rows[0] if rows else None


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


def _looks_like_reference(key: str, value: Any) -> bool:
    """``track_id``, ``speaker-id``, ``{"id": 3, ...}`` or a list of such objects: a link, if it were mapped."""
    if value is None:
        return False
    if isinstance(value, dict):
        return "id" in value
    if isinstance(value, list):
        return bool(value) and isinstance(value[0], dict) and "id" in value[0]
    return fold_key(key).endswith("_id")


class _ModelNormaliser:
    """Normalises the records of one model file.

    ``tz``: the zone of times written without an offset (the event's
    ``timezone``); ``event_id``: the archive's event id, which a child
    record's ``event_id`` must name.
    """

    def __init__(
        self, spec: ModelSpec, file: str, problems: Problems, tz: tzinfo | None = None, event_id: str | None = None
    ):
        self.spec = spec
        self.file = file
        self.problems = problems
        self.ref_fields = {r.field: r for r in spec.refs}
        self.fields = spec.record.model_fields
        self.strict = set(spec.required) | {spec.label}
        self.validator = spec.record.__pydantic_validator__
        self.context: dict[str, Any] = {"tz": tz, "naive": 0}
        self.not_text = {name for name, info in self.fields.items() if info.annotation not in (str, str | None)}
        self.event_id = event_id
        # source key -> (field name, whether the key names the field itself rather than an alias)
        self.names: dict[str, tuple[str, bool]] = {}
        self.unmapped: dict[str, int] = {}  # source key -> records keeping it in extra
        self.reference_like: dict[str, int] = {}  # the unmapped keys whose values look like references
        self.foreign_parent = 0  # records whose event_id names another event
        self.shape = shapes.FileShape(file)

    def _name(self, key: str) -> tuple[str, bool]:
        folded = fold_key(key)
        name = self.spec.aliases.get(folded, folded)
        if self.spec is not EVENT and name in PARENT_FIELDS:
            name = PARENT_FIELDS[0]
        named = self.names[key] = (name, name == folded)
        return named

    def record(self, raw: Any, index: int) -> NormRecord | None:
        if not isinstance(raw, dict):
            self.problems.error(self.file, f"record #{index + 1} is not an object but {type(raw).__name__}")
            return None
        source_id = canonical_id(raw.get("id"))
        if source_id is None:
            what = "missing" if raw.get("id") is None else f"unusable ({raw.get('id')!r})"
            self.problems.error(self.file, f"record #{index + 1}: id is {what}", field="id")
            return None
        self.shape.see(raw, source_id)
        values: dict[str, Any] = {}
        origin: dict[str, str] = {}
        exact: dict[str, bool] = {}
        refs: dict[str, Any] = {}
        raw_refs: dict[str, tuple[str, Any]] = {}
        extra: dict[str, Any] = {}
        inline: dict[str, dict] = {}
        names = self.names
        for key, value in raw.items():
            if key == "id":
                continue
            named = names.get(key)  # a handful of keys, repeated in every record: no call on a hit
            name, is_exact = named if named is not None else self._name(key)
            if name in self.ref_fields:
                self._reference(self.ref_fields[name], key, value, source_id, refs, raw_refs, extra, inline)
            elif name in self.fields:
                if name not in origin:
                    values[name], origin[name], exact[name] = value, key, is_exact
                    continue
                # Two source keys for one column: the column's own name beats an alias (the reference
                # server's ``slides_url`` beats its JSON ``slides``), else the first that has a value.
                replace = is_exact > exact[name] or (
                    is_exact == exact[name] and values[name] is None and value is not None
                )
                if replace:
                    key, value, values[name], origin[name], exact[name] = (
                        origin[name],
                        values[name],
                        value,
                        key,
                        is_exact,
                    )
                extra[key] = value
                self.unmapped[key] = self.unmapped.get(key, 0) + 1
            elif name == PARENT_FIELDS[0] and self.event_id is not None:
                if reference_id(value)[0] != self.event_id:
                    self.foreign_parent += 1
                    extra[key] = value  # names another event: not ours to resolve, kept
            else:
                extra[key] = value
                self.unmapped[key] = self.unmapped.get(key, 0) + 1
                if _looks_like_reference(key, value):
                    self.reference_like[key] = self.reference_like.get(key, 0) + 1
        if not self._validate(values, origin, extra, source_id):
            return None
        return NormRecord(source_id, source_id, values, refs, extra, inline, raw_refs or None)

    def _reference(
        self,
        ref: Ref,
        key: str,
        value: Any,
        source_id: str,
        refs: dict[str, Any],
        raw_refs: dict[str, tuple[str, Any]],
        extra: dict[str, Any],
        inline: dict[str, dict],
    ) -> None:
        """Parse one reference field into ``refs``; a value that is no usable reference is kept in ``extra``."""
        if ref.many:
            target: Any = self._many(ref, key, value, source_id, extra)
        else:
            target, usable = reference_id(value)
            if not usable:
                self._unusable(ref, key, value, source_id, extra, "is no usable id")
            elif target is None and isinstance(value, dict) and any(v is not None for v in value.values()):
                # {"id": null, "name": "Talk"}: an object without an id names nothing (one id rule everywhere).
                self._unusable(ref, key, value, source_id, extra, "has no id, so it is no reference")
        if ref.field in refs:
            # A second key for one reference (``track`` and ``track_id``): the first that names something wins.
            earlier = refs[ref.field]
            if earlier in (None, []) and target not in (None, []):
                earlier_key, earlier_value = raw_refs[ref.field]
                if earlier_value is not None:
                    extra[earlier_key] = earlier_value
            else:
                if target not in (None, []) and target != earlier:
                    extra[key] = value
                return
        refs[ref.field] = target
        raw_refs[ref.field] = (key, value)
        if ref.inline_creates and target is not None and isinstance(value, dict) and len(value) > 1:
            inline[ref.field] = value

    def _many(self, ref: Ref, key: str, value: Any, source_id: str, extra: dict[str, Any]) -> list[str]:
        if value is None:
            return []
        items = value if isinstance(value, list) else [value]
        targets = []
        for item in items:
            target, usable = reference_id(item)
            if target is not None:
                targets.append(target)
            elif not usable or (isinstance(item, dict) and any(v is not None for v in item.values())):
                self._unusable(ref, key, value, source_id, extra, f"holds {item!r:.60}, which is no usable reference")
        return targets

    def _unusable(self, ref: Ref, key: str, value: Any, source_id: str, extra: dict[str, Any], why: str) -> None:
        self.problems.warn(self.file, f"{key} {why}; no link, raw value kept in extra", source_id, ref.field)
        extra[key] = value

    def finish(self, unmapped: dict[str, dict[str, int]]) -> None:
        """After the file's last record: the per-file notices (never one per record)."""
        if self.unmapped:
            unmapped[self.file] = dict(self.unmapped)
        for key, count in self.reference_like.items():
            self.problems.warn(
                self.file,
                f"looks like a reference but is not imported as a link; kept in extra ({_records(count)})",
                field=key,
            )
        if self.foreign_parent:
            self.problems.warn(
                self.file,
                f"names an event other than the archive's (id {self.event_id}); kept in extra "
                f"({_records(self.foreign_parent)})",
                field="event_id",
            )

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
                model = self.validator.validate_python(values, context=self.context)
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


def _records(count: int) -> str:
    return f"{count} record{'s' if count != 1 else ''}"


def _is_jsonapi(document: Any) -> bool:
    """A JSON:API document (``{"data": ..., "jsonapi": ...}``), as the reference server's v1 GET API answers."""
    if not isinstance(document, dict) or "data" not in document:
        return False
    data = document["data"]
    sample = data[0] if isinstance(data, list) and data else data
    return data == [] or (isinstance(sample, dict) and ("attributes" in sample or "type" in sample))


def _resource_record(resource: Any) -> Any:
    """A JSON:API resource object as a flat record: its id, its attributes, and each relationship as the
    id(s) it names (``{"data": {"type": "track", "id": "3"}}`` -> ``"3"``); its ``links`` and ``meta``
    kept as fields (they end in ``extra``). The resource ``type`` is the file's model."""
    if not isinstance(resource, dict):
        return resource
    record: dict[str, Any] = {"id": resource.get("id")}
    attributes = resource.get("attributes")
    if isinstance(attributes, dict):
        record.update((k, v) for k, v in attributes.items() if k not in ("id", "type"))
    relationships = resource.get("relationships")
    if isinstance(relationships, dict):
        for name, body in relationships.items():
            data = body.get("data") if isinstance(body, dict) else None
            if isinstance(data, list):
                record[name] = [_identifier(item) for item in data]
            else:
                record[name] = _identifier(data)
    for name in ("links", "meta"):
        if name in resource:
            record[name] = resource[name]
    return record


def _identifier(data: Any) -> Any:
    return data.get("id") if isinstance(data, dict) and "id" in data else data


def _unwrap(document: Any, spec: ModelSpec, included: list | None = None) -> Any:
    """A model file's records, whatever envelope holds them: a bare list (the exports), a wrapper
    object (``{"sessions": [...]}``, ``{"events": [...]}``: the 2015-2016 API dump), or a JSON:API
    document (``{"data": [...]}``; its ``included`` resources are added to ``included``). The event
    file is unwrapped by the same rule; see ``_one_event``."""
    if _is_jsonapi(document):
        if included is not None and isinstance(document.get("included"), list):
            included.extend(document["included"])
        data = document["data"]
        return [_resource_record(r) for r in data] if isinstance(data, list) else _resource_record(data)
    if isinstance(document, dict):
        names = {fold_key(n) for n in (spec.name, spec.table, *spec.files)}
        wrapped = [v for k, v in document.items() if fold_key(k) in names and isinstance(v, (list, dict))]
        if len(wrapped) == 1 and (isinstance(wrapped[0], list) or spec is EVENT):
            return wrapped[0]
    return document


def _one_event(document: Any, file: str, problems: Problems, included: list | None = None) -> dict | None:
    """The event object of an event file (a record, a list of one, or any envelope of ``_unwrap``)."""
    if not isinstance(document, (dict, list)):
        problems.error(file, f"event must be a JSON object, got {type(document).__name__}")
        return None
    document = _unwrap(document, EVENT, included)
    if isinstance(document, list):
        if len(document) != 1 or not isinstance(document[0], dict):
            problems.error(file, f"expected one event record, got a list of {len(document)}")
            return None
        document = document[0]
    return document


def _model_documents(
    archive: Archive, spec: ModelSpec, problems: Problems, included: list
) -> tuple[str, Iterable] | None:
    """The raw records of a model, from its own file (streamed when it is an array) or the event."""
    for name in spec.files:
        if name in archive.members:
            document = archive.records(name)
            if not archive.parsed(name):
                return None  # invalid JSON: already reported
            document = _unwrap(document, spec, included)
            if not isinstance(document, (list, Iterator)):
                problems.error(name, f"expected a list of records, got {type(document).__name__}")
                return None
            return name, document
    event = _event_document(archive)
    if isinstance(event, dict):
        for key, value in event.items():
            if fold_key(key) in spec.embedded_in_event and isinstance(value, list):
                return f"{_event_file(archive)}:{key}", value
    return None


def _event_file(archive: Archive) -> str:
    return next((name for name in EVENT.files if name in archive.members), EVENT.files[0])


def _event_document(archive: Archive) -> Any:
    file = _event_file(archive)
    document = archive.document(file)
    return _one_event(document, file, Problems()) if document is not None else None


def normalise(archive: Archive) -> Normalised:
    """Normalise every model of the archive and cross-check references."""
    out = Normalised(problems=archive.problems)
    problems = out.problems
    file = _event_file(archive)
    event_doc = archive.document(file)
    tz, event_id = None, None
    normalisers: list[_ModelNormaliser] = []
    event_file = file
    included: list = []  # JSON:API compound documents' "included" resources
    without_file: list[ModelSpec] = []
    if file not in archive.members:
        problems.error("event", "the archive has no event file")
    elif archive.parsed(file) and (event := _one_event(event_doc, file, problems, included)) is not None:
        embedded = {fold_key(k) for m in MODELS for k in m.embedded_in_event}
        document = {k: v for k, v in event.items() if fold_key(k) not in embedded}
        tz = _event_zone(document, file, problems)
        normaliser = _ModelNormaliser(EVENT, file, problems, tz)
        normalisers.append(normaliser)
        record = normaliser.record(document, 0)
        out.records[EVENT.name] = [record] if record else []
        event_id = record.source_id if record else canonical_id(document.get("id"))
    for spec in MODELS[1:]:
        found = _model_documents(archive, spec, problems, included)
        records: list[NormRecord] = []
        if found is None:
            without_file.append(spec)
        else:
            file, raw_records = found
            normaliser = _ModelNormaliser(spec, file, problems, tz, event_id)
            normalisers.append(normaliser)
            records = [r for i, raw in enumerate(raw_records) if (r := normaliser.record(raw, i))]
            normaliser.finish(out.unmapped)
            records = _dedupe(records, file, problems)
        out.records[spec.name] = records
    for spec, file, resources in _included_by_model(included, without_file):
        normaliser = _ModelNormaliser(spec, file, problems, tz, event_id)
        normalisers.append(normaliser)
        records = [r for i, raw in enumerate(resources) if (r := normaliser.record(_resource_record(raw), i))]
        normaliser.finish(out.unmapped)
        out.records[spec.name] = _dedupe(records, file, problems)
    if normalisers and normalisers[0].spec is EVENT:
        normalisers[0].finish(out.unmapped)
    meta = archive.document("meta") if "meta" in archive.members else None  # before check_unread drops it
    archive.check_unread()
    _naive_times(normalisers, tz, event_file, problems)
    _inline_records(out, tz)
    _parse_lengths(out)
    # What the database would refuse (column ranges, key lengths, NUL, surrogates, JSON): errors here.
    storable.check_records(out.records, problems, strings=archive.odd_text)
    _check_references(out)
    out.shape = shapes.describe(archive, normalisers, out, fold_key, meta)
    return out


def _included_by_model(included: list, without_file: list[ModelSpec]) -> list[tuple[ModelSpec, str, list]]:
    """The ``included`` resources of the models the archive has no file for, by their JSON:API type
    (``session-type`` -> ``session_types``), each once (a compound document repeats them); a model that
    has its own file takes its records from there only."""
    wanted = {fold_key(spec.name).removesuffix("s"): spec for spec in without_file}
    found: dict[str, dict[Any, Any]] = {}
    for resource in included:
        spec = wanted.get(fold_key(str(resource.get("type", "")))) if isinstance(resource, dict) else None
        if spec is not None:
            found.setdefault(spec.name, {}).setdefault(resource.get("id"), resource)
    return [(BY_NAME[name], f"{name}:included", list(by_id.values())) for name, by_id in found.items()]


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


def _naive_times(normalisers: list[_ModelNormaliser], tz: tzinfo | None, file: str, problems: Problems) -> None:
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


def _inline_records(out: Normalised, tz: tzinfo | None) -> None:
    """Records given only inline (a session's session type) become records of the event.

    Only an inline object with a usable id names a record (an object without
    one was already kept in ``extra`` with a warning); problems name the
    parent record, in the parent's file.
    """
    for spec in MODELS:
        for ref in (r for r in spec.refs if r.inline_creates):
            target = BY_NAME[ref.target]
            known = {r.source_id for r in out.records[target.name]}
            normaliser = _ModelNormaliser(target, spec.files[0], out.problems, tz)
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
    """Resolve every reference against the ids the archive has.

    A reference that names no record (dangling) becomes an empty link and a
    warning, its raw value kept in ``extra``. A text that is no id of the
    target but the name of exactly one of its records (the 2015 API gave
    session types by name: open-event-server#31) resolves to that record.
    Links are the union of both sides (a session's ``speakers``, a speaker's
    ``sessions``); a track's ``sessions`` list mirrors each session's ``track``
    and fills it where the session has none.
    """
    ids = {name: {r.source_id for r in rows} for name, rows in out.records.items()}
    names = {name: _by_label(BY_NAME[name], rows) for name, rows in out.records.items()}
    by_id = {name: {r.source_id: r for r in rows} for name, rows in out.records.items()}
    links: dict[tuple[str, str], None] = {}
    for spec in MODELS:
        for record in out.records.get(spec.name, []):
            for ref in spec.refs:
                if ref.inverse:
                    continue  # once every forward reference is resolved, below
                value = record.refs.get(ref.field)
                if ref.many:
                    record.refs[ref.field] = kept = _resolve_many(out, spec, record, ref, ids, names)
                    for target in kept:
                        links[(record.source_id, target) if spec.name == "sessions" else (target, record.source_id)] = (
                            None
                        )
                elif value is not None and value not in ids[ref.target]:
                    resolved = names[ref.target].get(value)
                    if resolved is None:
                        _dangling(out, spec, record, ref, value, "link left empty")
                    record.refs[ref.field] = resolved
    for spec in MODELS:
        for ref in (r for r in spec.refs if r.inverse):
            for record in out.records.get(spec.name, []):
                kept = _resolve_many(out, spec, record, ref, ids, names)
                record.refs[ref.field] = kept
                for target in kept:
                    _mirror(out, spec, record, ref, by_id[ref.target][target])
    for rows in out.records.values():
        for record in rows:
            record.raw_refs = None
    out.links = list(links)


def _resolve_many(
    out: Normalised,
    spec: ModelSpec,
    record: NormRecord,
    ref: Ref,
    ids: dict[str, set[str]],
    names: dict[str, dict[str, str]],
) -> list[str]:
    """The ids of a list reference that name records (by id, else by a unique name); warns on the rest."""
    kept = []
    for target in record.refs.get(ref.field) or []:
        if target not in ids[ref.target]:
            target = names[ref.target].get(target, target)
        if target in ids[ref.target]:
            kept.append(target)
        else:
            _dangling(out, spec, record, ref, target, "link skipped")
    return kept


def _by_label(spec: ModelSpec, rows: list[NormRecord]) -> dict[str, str]:
    """A model's records by their label (name), where the name is unique: name -> source id."""
    seen: dict[str, str | None] = {}
    for record in rows:
        label = record.values.get(spec.label)
        if isinstance(label, str) and label.strip():
            seen[label.strip()] = None if label.strip() in seen else record.source_id
    return {label: id_ for label, id_ in seen.items() if id_ is not None}


def _dangling(out: Normalised, spec: ModelSpec, record: NormRecord, ref: Ref, target: str, outcome: str) -> None:
    out.problems.warn(
        spec.files[0],
        f"refers to {ref.target} id {target}, which the archive lacks; {outcome}, raw value kept in extra",
        record.source_id,
        ref.field,
    )
    _keep_raw(record, ref)


def _keep_raw(record: NormRecord, ref: Ref) -> None:
    """Nothing is lost: the reference's value as the archive wrote it goes to ``extra``."""
    if record.raw_refs and ref.field in record.raw_refs:
        key, value = record.raw_refs[ref.field]
        record.extra.setdefault(key, value)


def _mirror(out: Normalised, spec: ModelSpec, record: NormRecord, ref: Ref, target: NormRecord) -> None:
    """``record`` (a track) lists ``target`` (a session): the session's own reference should agree."""
    assert ref.inverse is not None
    own = target.refs.get(ref.inverse)
    if own is None:
        target.refs[ref.inverse] = record.source_id
    elif own != record.source_id:
        out.problems.warn(
            spec.files[0],
            f"lists {ref.target} id {target.source_id}, whose {ref.inverse} is {own}; the session's own kept, "
            "raw value kept in extra",
            record.source_id,
            ref.field,
        )
        _keep_raw(record, ref)
