"""The ``source`` dialect: each record written back as its archive wrote it.

The archive's shape (``read/shape.py``, stored in ``events.archive_format``)
gives, per file, the keys in their original spelling and order, the JSON
types of their values, the members of reference objects, the key list of each record
that differs from its file's, and the links a list did not name. Each key is mapped to its
field by the same rule as the import (``fold_key`` and the catalog's
aliases), and its value is taken from, in this order: the row's ``extra``
(unmapped fields and raw values the import could not use), the id, a
reference, a column, the parent event's id.
"""

from __future__ import annotations

from typing import Any

from event_pipeline.export.dialects import Context, media_value
from event_pipeline.export.values import json_value, typed_id
from event_pipeline.media.objects import ARCHIVE_PATHS
from event_pipeline.model.catalog import BY_NAME, EVENT, PARENT_FIELDS, ModelSpec, Ref
from event_pipeline.read.normalise import fold_key


def field_of(spec: ModelSpec, key: str) -> str:
    """The field a source key names, by the import's own rule (``_ModelNormaliser._name``)."""
    folded = fold_key(key)
    name = spec.aliases.get(folded, folded)
    if spec is not EVENT and name in PARENT_FIELDS:
        return PARENT_FIELDS[0]
    return name


def member_columns(shape: dict[str, Any] | None) -> dict[str, set[str]]:
    """Per referenced model, the target columns the archive's reference objects repeat (``name``, ...)."""
    out: dict[str, set[str]] = {}
    for model, file in ((shape or {}).get("files") or {}).items():
        spec = BY_NAME[model]
        refs = {r.field: r for r in spec.refs}
        for key, members in file["members"].items():
            ref = refs.get(field_of(spec, key))
            if ref is not None:
                target = BY_NAME[ref.target]
                out.setdefault(ref.target, set()).update(field_of(target, m) for m in members)
    return out


class SourceFile:
    """One data file of the archive, ready to write its records back: ``file`` is its entry in the shape."""

    def __init__(self, spec: ModelSpec, file: dict[str, Any]):
        self.spec = spec
        self.file = file
        self.keys: list[str] = file["keys"]
        self.types: dict[str, list[str]] = file["types"]
        self.members: dict[str, dict[str, list[str]]] = file["members"]
        self.fields = {key: field_of(spec, key) for key in self.keys}
        self.refs = {r.field: r for r in spec.refs}
        self.media = {m.column for m in spec.media}
        self.layouts: dict[str, list[str]] = {}  # a record whose keys differ from the file's usual ones
        for keys, ids in file["layouts"]:
            for source_id in ids:
                self.layouts[source_id] = keys
        self.omitted: dict[str, dict[str, list[str]]] = file.get("omitted") or {}
        self.inline: dict[str, dict[str, dict]] = file.get("inline") or {}
        self.not_in_file = set(file.get("not_in_file") or ())
        self.first_kind: dict[str, str] = file.get("first_kind") or {}
        self.other_kinds: dict[str, dict[str, str]] = file.get("other_kinds") or {}
        self.inline_records: dict[str, dict[str, dict[str, dict]]] = file.get("inline_records") or {}

    def record(self, row: dict[str, Any], ctx: Context, many: dict[str, list[int]]) -> dict[str, Any]:
        """One row as the archive wrote it. ``many``: per list reference, the linked rows' database ids."""
        extra = row.get("extra") or {}
        out: dict[str, Any] = {}
        for key in self.layouts.get(row["source_id"], self.keys):
            if key in extra:
                out[key] = extra[key]
                continue
            name = self.fields.get(key) or field_of(self.spec, key)
            types = self.types.get(key, [])
            kind = self.other_kinds.get(key, {}).get(row["source_id"]) or self.first_kind.get(key)
            if kind is not None and name not in self.refs:
                types = [kind]  # this record's own type for the key (``1`` here, ``"2"`` in another record)
            if key == "id":
                out[key] = typed_id(row["source_id"], types)
            elif name in self.refs:
                out[key] = self._reference(self.refs[name], key, row, ctx, many)
            elif name in self.spec.record.model_fields:
                value = media_value(self.spec, row, name) if name in self.media else row[name]
                out[key] = json_value(value, types, ctx.zone)
            elif name == PARENT_FIELDS[0] and self.spec is not EVENT:
                out[key] = typed_id(ctx.event_source_id, types)
            else:
                out[key] = None
        for key, value in extra.items():
            if key not in out and key != ARCHIVE_PATHS:
                out[key] = value
        return out

    def _reference(self, ref: Ref, key: str, row: dict[str, Any], ctx: Context, many: dict[str, list[int]]) -> Any:
        types = [t for t in self.types.get(key, []) if t != "NoneType"]
        members = self.members.get(key, {})
        targets = ctx.targets.get(ref.target, {})
        if not ref.many:
            target = targets.get(row[ref.fk_column])
            if target is None:
                if "NoneType" in self.types.get(key, []) or "dict" not in types:
                    return None
                return {m: None for m in members}  # {"id": null}: an object that names nothing
            kind = self.other_kinds.get(key, {}).get(row["source_id"]) or self.first_kind.get(key)
            return self._item(ref, target, [kind] if kind else types, members, key, row["source_id"])
        omitted = set(self.omitted.get(ref.field, {}).get(row["source_id"], ()))
        linked = [targets[i] for i in many.get(ref.field, []) if i in targets]
        items = [
            self._item(ref, t, [], members, key, row["source_id"]) for t in linked if t["source_id"] not in omitted
        ]
        if not items and "list" not in types:
            return None
        return items

    def _item(
        self, ref: Ref, target: dict[str, Any], types: list[str], members: dict[str, list[str]], key: str, owner: str
    ) -> Any:
        """A reference to ``target`` as the archive wrote it: an object with these members (those the target
        does not give back as the archive wrote them come from the shape's ``inline``), or its id."""
        object_members = {m: t for m, t in members.items() if m != "[]"}
        if ("dict" in types or (ref.many and object_members)) and object_members:
            spec = BY_NAME[ref.target]
            out = {}
            for member, member_types in object_members.items():
                if member == "id":
                    out[member] = typed_id(target["source_id"], member_types)
                    continue
                name = field_of(spec, member)
                extra = target.get("extra") or {}
                value = target.get(name) if name in target else extra.get(member)
                out[member] = json_value(value, member_types, None)
            target_id = target["source_id"]
            kept = self.inline_records.get(key, {}).get(owner, {}).get(target_id)
            if kept is None:
                kept = self.inline.get(key, {}).get(target_id)
            if kept is not None:
                written = out
                out = {m: (written.get("id") if m == "id" else v) for m, v in kept.items()}  # as the archive wrote it
            return out
        return typed_id(target["source_id"], members.get("[]", types) if ref.many else types)
