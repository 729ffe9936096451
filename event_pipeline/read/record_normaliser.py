"""One model file's records, one by one: field names and aliases, references, validation, ``extra``."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, tzinfo
from typing import Any

from pydantic import ValidationError

from event_pipeline.model.catalog import EVENT, PARENT_FIELDS, ModelSpec, Ref
from event_pipeline.problems import Problems
from event_pipeline.read import shape as shapes
from event_pipeline.read import storable
from event_pipeline.read.fields import canonical_id, fold_key, looks_like_reference, reference_id
from event_pipeline.read.normalised import NormRecord
from event_pipeline.read.spill import BodySpill

# Where a source key's values go (``ModelNormaliser.names``): a reference, a record field, the parent
# event's id, or ``extra`` (a key named like ``*_id`` looks like a reference there).
_REFERENCE, _FIELD, _PARENT, _EXTRA, _EXTRA_ID = range(5)
DERIVED = "derived"  # the stage of a derived column's warning (``NormRecord.pending``)


class ModelNormaliser:
    """Normalises the records of one model file.

    ``tz``: the zone of times written without an offset (the event's
    ``timezone``); ``event_id``: the archive's event id, which a child
    record's ``event_id`` must name; ``known``: the ids of the models read
    before this one (model name -> source ids), so references to them need
    not keep their raw values; ``id_texts``: the text of every integer id
    read so far (shared by the archive's normalisers), so an id named by many
    records (a track, a speaker of several sessions) is one string, not one
    per mention (100 000 sessions: ~30 MiB); ``spill``: where each record's body goes once read
    (``NormRecord.spill``), None to keep it in memory; ``strings``: whether a record's strings may hold
    NUL or a surrogate (``Archive.odd_text``, asked as each record is checked, ``storable.check_record``).
    """

    def __init__(
        self,
        spec: ModelSpec,
        file: str,
        problems: Problems,
        tz: tzinfo | None = None,
        event_id: str | None = None,
        known: dict[str, set[str]] | None = None,
        id_texts: dict[int, str] | None = None,
        spill: BodySpill | None = None,
        strings: Callable[[], bool] = lambda: True,
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
        self.known = known or {}  # model -> the ids of its records read so far (models read earlier)
        self.id_texts = {} if id_texts is None else id_texts
        # source key -> (field name, whether the key names the field itself rather than an alias, route):
        # worked out once per key of the file, not once per record
        self.names: dict[str, tuple[str, bool, int]] = {}
        self.unmapped: dict[str, int] = {}  # source key -> records keeping it in extra
        self.reference_like: dict[str, int] = {}  # the unmapped keys whose values look like references
        self.foreign_parent = 0  # records whose event_id names another event
        self.shape = shapes.FileShape(file, spill)
        self.spill = spill
        self.strings = strings
        # What a spilled record keeps in memory: the fields read record by record after the reading
        # (the label, by which a reference may name it; the media columns, which media checks and stores).
        self.keep = tuple(dict.fromkeys([spec.label, *(m.column for m in spec.media)]))
        self.times = tuple(name for name, info in self.fields.items() if info.annotation in (datetime, datetime | None))

    def _name(self, key: str) -> tuple[str, bool, int]:
        folded = fold_key(key)
        name = self.spec.aliases.get(folded, folded)
        if self.spec is not EVENT and name in PARENT_FIELDS:
            name = PARENT_FIELDS[0]
        if name in self.ref_fields:
            route = _REFERENCE
        elif name in self.fields:
            route = _FIELD
        elif name == PARENT_FIELDS[0] and self.event_id is not None:
            route = _PARENT
        else:
            route = _EXTRA_ID if folded.endswith("_id") else _EXTRA
        named = self.names[key] = (name, name == folded, route)
        return named

    def record(self, raw: Any, index: int) -> NormRecord | None:
        if not isinstance(raw, dict):
            self.problems.error(self.file, f"record #{index + 1} is not an object but {type(raw).__name__}")
            return None
        raw_id = raw.get("id")
        source_id = self._id_text(raw_id) if type(raw_id) is int else canonical_id(raw_id)
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
        unmapped = self.unmapped
        for key, value in raw.items():
            if key == "id":
                continue
            named = names.get(key)  # a handful of keys, repeated in every record: no call on a hit
            name, is_exact, route = named if named is not None else self._name(key)
            if route == _FIELD:
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
                unmapped[key] = unmapped.get(key, 0) + 1
            elif route == _REFERENCE:
                self._reference(self.ref_fields[name], key, value, source_id, refs, raw_refs, extra, inline)
            elif route == _PARENT:
                if reference_id(value)[0] != self.event_id:
                    self.foreign_parent += 1
                    extra[key] = value  # names another event: not ours to resolve, kept
            else:
                extra[key] = value
                unmapped[key] = unmapped.get(key, 0) + 1
                if value is not None and (
                    route == _EXTRA_ID if not isinstance(value, (dict, list)) else looks_like_reference(key, value)
                ):
                    self.reference_like[key] = self.reference_like.get(key, 0) + 1
        validated = self._validate(values, origin, extra, source_id)
        if validated is None:
            return None
        record = NormRecord(source_id, source_id, validated, refs, extra, inline, raw_refs or None)
        if self.spec.derived:
            self._derive(record, validated)
        storable.check_record(record, self.spec.name, strings=self.strings())
        if self.spill is not None:
            record.spill(self.spill, self.keep, self.times)
        return record

    def _derive(self, record: NormRecord, values: dict[str, Any]) -> None:
        """The catalog's derived columns (a session type's ``length_minutes``); what does not parse stays
        text, with a warning reported after the inline records' (``normalise.report_derived``)."""
        for derived in self.spec.derived:
            raw = values.get(derived.source)
            value = values[derived.column] = derived.parse(raw)
            if raw not in (None, "") and value is None:
                message = f"{derived.source} {raw!r} is not {derived.what}; kept as text"
                record.add_pending("warn", DERIVED, self.spec.files[0], message, derived.source)

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
        elif type(value) is int:
            target = self._id_text(value)  # the usual ids, as reference_id gives them
        elif type(value) is dict and type(value.get("id")) is int:
            target = self._id_text(value["id"])
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
        if target in (None, []) or not self._resolves(ref, target):
            # Kept for what may not resolve: the raw value goes to ``extra`` then, and an inline object
            # may create its target. A reference to a record already read needs neither, and keeping
            # its objects (a session's track, speakers...) was a sixth of a large import's memory.
            raw_refs[ref.field] = (key, value)
            if ref.inline_creates and target is not None and isinstance(value, dict) and len(value) > 1:
                inline[ref.field] = value

    def _id_text(self, value: int) -> str:
        """An integer id as :func:`canonical_id` writes it, one string per id for the whole archive."""
        text = self.id_texts.get(value)
        if text is None:
            text = self.id_texts[value] = str(value)
        return text

    def _resolves(self, ref: Ref, target: Any) -> bool:
        """Whether ``target`` (an id, or a list of ids) names records of a model read before this one."""
        ids = self.known.get(ref.target)
        if ids is None:
            return False
        return ids.issuperset(target) if ref.many else target in ids

    def _many(self, ref: Ref, key: str, value: Any, source_id: str, extra: dict[str, Any]) -> list[str]:
        if value is None:
            return []
        items = value if isinstance(value, list) else [value]
        targets = []
        for item in items:
            if type(item) is dict and type(item.get("id")) is int:
                targets.append(self._id_text(item["id"]))  # the usual id: reference_id's result
                continue
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
                f"looks like a reference but is not imported as a link; kept in extra ({records_phrase(count)})",
                field=key,
            )
        if self.foreign_parent:
            self.problems.warn(
                self.file,
                f"names an event other than the archive's (id {self.event_id}); kept in extra "
                f"({records_phrase(self.foreign_parent)})",
                field="event_id",
            )

    def _validate(self, values: dict, origin: dict, extra: dict, source_id: str) -> dict | None:
        """The record's fields validated by its pydantic model (a new dict), or None after an error.

        A field that does not validate is an error if the record cannot do without it (required, or its
        label), else a warning and its raw value goes to ``extra``."""
        for name in self.spec.required:
            if values.get(name) is None:
                self.problems.error(self.file, "required field is missing", source_id, name)
                return None
        for name in self.not_text:
            if values.get(name) == "":
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
                    return None
                continue
            return model.__dict__  # the model's own field dict: the model object itself is not kept


def records_phrase(count: int) -> str:
    return f"{count} record{'s' if count != 1 else ''}"
