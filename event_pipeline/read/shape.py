"""How an archive wrote its records, recorded at import so the ``source`` export can write them back.

Normalising folds keys, maps aliases and turns every id into text; the rows
then no longer say that a session's start was ``"start_time"`` or
``"starts-at"``, that ids were numbers, that a reference was ``{"id": 1,
"name": ...}`` rather than ``1``, or which file name and envelope the archive
used. This module keeps exactly that, per data file, as one small JSON
document stored with the event (``events.archive_format``):

``{"version": 1, "files": {model: FileShape}, "meta": {...} | None}``, where a
FileShape is ``{"member": "sessions.json", "envelope": ..., "keys": [...],
"types": {key: [type names]}, "members": {key: {member: [type names]}},
"layouts": [[[keys], [source ids]], ...], "omitted": {key: {source id: [ids]}}}``:

- ``keys``: every source key, in order of first appearance (``id`` included);
- ``types``: the JSON types each key's values had (``int``, ``float``, ``str``,
  ``bool``, ``NoneType``, ``dict``, ``list``), so ``0.3`` comes back as a number
  though the column is text;
- ``members``: for object values and lists of objects (references), each
  member's types (``{"id": ["int"], "name": ["str"]}``);
- ``layouts``: the records whose keys are not ``keys`` in that order (a key
  absent, which is not ``null``; another order, which ``extra`` keeps), grouped
  by their own key list;
- ``first_kind``, ``other_kinds``: per key, the type of its first non-null
  value, and the records whose value had another (a reference written ``1``
  in one record and ``{"id": 1, ...}`` in another);
- ``omitted``: for list references (a speaker's ``sessions``), the links the
  database holds from the other side that this record did not list;
- ``envelope``: ``"list"``, ``"object"`` (the event), ``"list1"`` (an event as
  a list of one), ``{"wrap": key}``, ``{"embedded": key}`` (social links inside
  the event), or ``{"jsonapi": {...}}`` (resource type, relationships and their
  types, the document's other members).

Bounded: one entry per distinct key and type, plus the ids of records that
differ from their file's common key set.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from operator import is_
from typing import Any

import orjson

from event_pipeline.read.spill import BodySpill, body_digest

VERSION = 1
IN_MEMORY = 1_000  # first objects per reference key kept as objects; the others are spilled (FileShape.inline)


class FileShape:
    """The keys, value types and key sets seen in one data file's records (see the module docstring)."""

    def __init__(self, file: str, spill: BodySpill | None = None):
        self.file = file
        self.types: dict[str, set[str]] = {}  # insertion order = first appearance
        self.members: dict[str, dict[str, set[str]]] = {}
        self.first_kind: dict[str, str] = {}  # per key, the type of its first non-null value
        self.other_kinds: dict[str, dict[str, str]] = {}  # per key, the records whose value has another type
        self.layouts: dict[tuple, list[str]] = {}  # a record's keys in order -> the records with them
        # Reference objects' members besides the id (``{"id": 5, "name": ..., "length": 0.3}``), which the
        # import does not keep: per key, per target id, the first object's (its JSON text for the first
        # ``IN_MEMORY`` targets, then its number in ``spill``; read with :meth:`first_objects`); a record
        # whose object for that target differs keeps its own under ``inline_records``. Spilled because
        # there is one per target: a speaker's and a track's ``sessions`` objects held 110 MiB of 100 000
        # sessions' reading.
        self.inline: dict[str, dict[str, Any]] = {}
        self.spill = spill
        self.inline_records: dict[str, dict[str, dict[str, dict]]] = {}
        # What :meth:`see` worked out once per signature (keys and value types of a record or object):
        # the keys whose kind is not their first, the keys holding objects or lists, and the record ids
        # of the signature's layout (its list in ``layouts``, found without hashing the layout again).
        self._plans: dict[tuple, tuple[list[tuple[str, str]], list[str], list[str]]] = {}
        self._member_signatures: set[tuple] = set()

    def see(self, raw: dict[str, Any], source_id: str) -> None:
        """Observe one raw record (after JSON:API flattening, before any mapping).

        Records of one file mostly share their keys and value types: what a (keys, types) signature
        adds to ``types`` and ``first_kind`` is worked out once per signature, and a record then costs
        only the keys whose kind differs from their first one and its objects and lists; an object
        equal to the first one given for its target, member for member and type for type (a session's
        ``track`` repeated in every session of the track), costs one comparison (a spilled one: a digest)."""
        signature = (tuple(raw), tuple(map(type, raw.values())))
        plan = self._plans.get(signature)
        if plan is None:
            plan = self._plans[signature] = self._plan(raw, signature[0])
        differing, nested, ids = plan
        for key, kind in differing:
            self.other_kinds.setdefault(key, {})[source_id] = kind  # ``1`` here, ``{"id": 1}`` there
        for key in nested:
            value = raw[key]
            if isinstance(value, dict):
                self._object(key, source_id, value)
                continue
            for item in value:
                if isinstance(item, dict):
                    self._object(key, source_id, item)
                else:  # a list of ids: their types under the member name "[]"
                    self.members.setdefault(key, {}).setdefault("[]", set()).add(type(item).__name__)
        ids.append(source_id)

    def _plan(self, raw: dict[str, Any], layout: tuple) -> tuple[list[tuple[str, str]], list[str], list[str]]:
        """For a new signature: record its keys' types (and first kinds); return the keys whose kind is
        not their first one (with the kind), the keys holding an object or a list, and the list of record
        ids of the layout."""
        differing, nested = [], []
        for key, value in raw.items():
            kind = type(value).__name__
            self.types.setdefault(key, set()).add(kind)
            if kind != "NoneType" and self.first_kind.setdefault(key, kind) != kind:
                differing.append((key, kind))
            if kind in ("dict", "list"):
                nested.append(key)
        return differing, nested, self.layouts.setdefault(layout, [])

    def _object(self, key: str, source_id: str, value: dict) -> None:
        """One object value (a reference ``{"id": 5, "name": ...}``): its members' types, and what it
        says of its target beyond the id."""
        target = value.get("id")
        if type(target) is bool or not isinstance(target, (int, str)) or len(value) < 2:
            self._members(key, value)
            return
        target_id = str(target).strip()
        by_target = self.inline.setdefault(key, {})
        first = by_target.get(target_id)
        if first is None:
            self._members(key, value)
            # The id's place, not its value, is what the shape keeps of it (see :func:`_without_id`). The
            # objects of the first IN_MEMORY targets stay in memory as their JSON text: a model with few
            # records (a session's track) is compared the most often, and its few objects cost no memory
            # worth saving.
            if len(by_target) < IN_MEMORY or self.spill is None:
                by_target[target_id] = _json_text(value)
            else:
                by_target[target_id] = self.spill.add(value, {})
            return
        if self._same(first, value):
            return  # the object the first record gave (the common case): its members and types are known
        self._members(key, value)
        if _without_id(self._load(first)) != _without_id(value):
            self.inline_records.setdefault(key, {}).setdefault(source_id, {})[target_id] = _without_id(value)

    def _members(self, key: str, value: dict) -> None:
        signature = (key, tuple(value), tuple(map(type, value.values())))
        if signature in self._member_signatures:
            return
        self._member_signatures.add(signature)
        members = self.members.setdefault(key, {})
        for name, item in value.items():
            members.setdefault(name, set()).add(type(item).__name__)

    def first_objects(self, key: str) -> Iterator[tuple[str, dict]]:
        """The first object given for each target of ``key``, as ``(target id, object)``."""
        for target_id, first in self.inline.get(key, {}).items():
            yield target_id, self._load(first)

    def _same(self, first: Any, value: dict) -> bool:
        """Whether ``value`` is the first object, member for member, in order, type for type: the same JSON
        text (``1``, ``1.0`` and ``true`` differ); a spilled one by the digest of that text. An object
        orjson refuses (an integer beyond 64 bits) is kept as is and compared with ``==``, key order and
        member types."""
        kind = type(first)
        if kind is bytes:
            try:
                return orjson.dumps(value) == first
            except (TypeError, orjson.JSONEncodeError):
                return False
        if kind is dict:
            return (
                first == value
                and tuple(first) == tuple(value)
                and all(map(is_, map(type, first.values()), map(type, value.values())))
            )
        assert self.spill is not None  # a number is a place in the spill
        return body_digest(value, {}) == self.spill.digest(first)

    def _load(self, first: Any) -> dict:
        kind = type(first)
        if kind is bytes:
            return orjson.loads(first)
        if kind is dict:
            return first
        assert self.spill is not None
        return self.spill.load(first)[0]

    def as_json(
        self, member: str | None, envelope: Any, omitted: dict[str, dict[str, list[str]]], inline: dict[str, Any]
    ) -> dict[str, Any]:
        keys = list(self.types)
        usual = tuple(keys)
        # Each id once: a repeated identical record is imported (and exported) once.
        layouts = sorted(
            [list(layout), list(dict.fromkeys(ids))] for layout, ids in self.layouts.items() if layout != usual
        )
        return {
            "member": member,
            "envelope": envelope,
            "keys": keys,
            "types": {k: sorted(v) for k, v in self.types.items()},
            "members": {k: {m: sorted(t) for m, t in v.items()} for k, v in self.members.items()},
            "layouts": layouts,
            "omitted": omitted,
            "first_kind": self.first_kind,
            "other_kinds": self.other_kinds,
            "inline": {k: {t: _without_id(m) for t, m in by_target.items()} for k, by_target in inline.items()},
            "inline_records": self.inline_records,
        }


def _json_text(value: dict) -> bytes | dict:
    """An object as the shape keeps one in memory: its JSON text (orjson's), or the object itself if orjson
    refuses it."""
    try:
        return orjson.dumps(value)
    except (TypeError, orjson.JSONEncodeError):
        return value


def _without_id(members: dict) -> dict:
    """An object as the shape keeps it: the id's place, not its value (the target's id gives that)."""
    return {k: (None if k == "id" else v) for k, v in members.items()}


def envelope_of(document: Any, wrapper_names: set[str], fold) -> Any:
    """How a model file held its records: ``document`` is the parsed file (None when it was a JSON array
    read record by record)."""
    if document is None or isinstance(document, list):
        return "list" if not isinstance(document, list) or len(document) != 1 else "list1"
    if isinstance(document, dict) and "data" in document:
        data = document["data"]
        sample = data[0] if isinstance(data, list) and data else data
        if data == [] or (isinstance(sample, dict) and ("attributes" in sample or "type" in sample)):
            return {"jsonapi": _jsonapi(document, data)}
    if isinstance(document, dict):
        wrapped = [k for k, v in document.items() if fold(k) in wrapper_names and isinstance(v, (list, dict))]
        if len(wrapped) == 1:
            others = {k: v for k, v in document.items() if k != wrapped[0]}
            return {"wrap": wrapped[0], "others": others}
    return "object"


def _jsonapi(document: dict, data: Any) -> dict[str, Any]:
    resources = data if isinstance(data, list) else [data]
    kind: Any = None
    relationships: dict[str, Any] = {}
    for resource in resources:
        if not isinstance(resource, dict):
            continue
        kind = kind or resource.get("type")
        found_relationships = resource.get("relationships")
        if not isinstance(found_relationships, dict):
            continue  # not JSON:API's shape: the import warns or fails on it, the shape need not
        for name, body in found_relationships.items():
            target = body.get("data") if isinstance(body, dict) else None
            sample = target[0] if isinstance(target, list) and target else target
            found = sample.get("type") if isinstance(sample, dict) else None
            if relationships.get(name) is None:
                relationships[name] = found
    others = {k: v for k, v in document.items() if k not in ("data", "included")}
    return {"type": kind, "relationships": relationships, "single": isinstance(data, dict), "others": others}


def omitted_links(records: dict[str, list], spec, ref, links: dict[str, list[tuple[str, str]]]) -> dict[str, list[str]]:
    """For one list reference of ``spec`` (a session's ``speakers``, a speaker's or track's ``sessions``):
    per record, the targets the database will link it to that the record itself did not list.

    Worked out on (record, target) pairs as a whole (usually every link is listed from both sides and
    nothing is left), then per record in the records' order."""
    if ref.inverse:
        implied = {
            (owner, target.source_id)
            for target in records.get(ref.target, [])
            if (owner := target.refs.get(ref.inverse)) is not None
        }
    elif ref.link is not None:
        pairs = links.get(ref.link.table, [])
        implied = set(pairs) if spec.name == ref.link.owner else {(member, owner) for owner, member in pairs}
    else:
        return {}
    own = records.get(spec.name, [])
    ids = [record.source_id for record in own]
    listed = {(record.source_id, target) for record in own for target in record.refs.get(ref.field) or []}
    if len(set(ids)) != len(ids):  # records sharing an id ("1" and "1#2"): each against its own list
        listed = set()
    missing: dict[str, set[str]] = {}
    for owner, target in implied - listed:
        missing.setdefault(owner, set()).add(target)
    out: dict[str, list[str]] = {}
    for record in own:
        if record.source_id not in missing:
            continue
        left = missing[record.source_id] - set(record.refs.get(ref.field) or [])
        if left:
            out[record.source_id] = sorted(left)
    return out


def describe(archive: Any, normalisers: list, out: Any, fold, meta: Any = None) -> dict[str, Any]:
    """The archive's shape document (module docstring), from the normalisers that read its files, the
    archive (file names, whole documents kept), and the normalised records (links, for ``omitted``)."""
    files: dict[str, Any] = {}
    for normaliser in normalisers:
        spec, file = normaliser.spec, normaliser.file
        if file.endswith(":included"):
            continue  # JSON:API included resources: written back as the model's own file
        if ":" in file:
            member, envelope = None, {"embedded": file.split(":", 1)[1]}
        else:
            names = {fold(n) for n in (spec.name, spec.table, *spec.files)}
            member, envelope = archive.members.get(file, file), envelope_of(archive.document(file), names, fold)
        omitted = {}
        for ref in spec.refs:
            if ref.many:
                keys = [k for k, (name, *_) in normaliser.names.items() if name == ref.field]
                lists = any("list" in normaliser.shape.types.get(k, ()) for k in keys)
                found = omitted_links(out.records, spec, ref, out.links) if lists else {}
                if found:
                    omitted[ref.field] = found
        inline = _unreproducible(normaliser, spec, out, fold)
        files[spec.name] = normaliser.shape.as_json(member, envelope, omitted, inline)
        # Records the file did not have (a session type given only inline in sessions): not written back.
        seen = {source_id for ids in normaliser.shape.layouts.values() for source_id in ids}
        files[spec.name]["not_in_file"] = sorted(
            r.source_id for r in out.records.get(spec.name, []) if r.source_id not in seen
        )
    return {"version": VERSION, "files": files, "meta": meta, "meta_member": archive.members.get("meta")}


def _unreproducible(normaliser: Any, spec: Any, out: Any, fold) -> dict[str, dict[str, dict]]:
    """The reference objects whose members the target record does not give back (an inline ``length`` of
    ``0.3`` where the session type says ``"00:30"``, a speaker's name written differently): kept."""
    from event_pipeline.model.catalog import BY_NAME  # the catalog imports nothing from here

    refs = {r.field: r for r in spec.refs}
    kept: dict[str, dict[str, dict]] = {}
    for key in normaliser.shape.inline:
        ref = refs.get(normaliser.names.get(key, (None,))[0])
        if ref is None:
            continue
        target_spec = BY_NAME[ref.target]
        records = {r.source_id: r for r in out.records.get(ref.target, [])}
        columns: dict[str, str] = {}  # member -> the target's field it names (folded, aliases mapped)
        fields = target_spec.record.model_fields
        for target_id, members in normaliser.shape.first_objects(key):
            record = records.get(target_id)
            if record is None or not all(
                member == "id"
                or _same(
                    value,
                    record,
                    columns.get(member) or columns.setdefault(member, _field(target_spec, member, fold)),
                    member,
                    fields,
                )
                for member, value in members.items()
            ):
                kept.setdefault(key, {})[target_id] = members
    return kept


def _field(spec: Any, member: str, fold) -> str:
    folded = fold(member)
    return spec.aliases.get(folded, folded)


def _same(value: Any, record: Any, name: str, member: str, fields: Any) -> bool:
    """Whether the export, writing ``member`` (the target's field ``name``) from the target record, gives
    ``value`` back; ``fields``: the target model's record fields."""
    if name in fields:  # every record has its model's fields: read without the body when kept (the label)
        column = record.value(name)
    else:
        values, extra = record.body()
        if name not in values:
            return extra.get(member, None) == value and member in extra
        column = values[name]
    if type(column) is type(value) and column == value:
        return True
    if isinstance(column, str) and isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            parsed = json.loads(column)
        except ValueError:
            return False
        return type(parsed) is type(value) and parsed == value
    return False
