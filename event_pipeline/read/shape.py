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
"absent": [[[keys], [source ids]], ...], "omitted": {key: {source id: [ids]}}}``:

- ``keys``: every source key, in order of first appearance (``id`` included);
- ``types``: the JSON types each key's values had (``int``, ``float``, ``str``,
  ``bool``, ``NoneType``, ``dict``, ``list``), so ``0.3`` comes back as a number
  though the column is text;
- ``members``: for object values and lists of objects (references), each
  member's types (``{"id": ["int"], "name": ["str"]}``);
- ``absent``: the records lacking some of the file's keys, grouped by the keys
  they lack (absent and ``null`` are different JSON);
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

from typing import Any

VERSION = 1


class FileShape:
    """The keys, value types and key sets seen in one data file's records (see the module docstring)."""

    def __init__(self, file: str):
        self.file = file
        self.types: dict[str, set[str]] = {}  # insertion order = first appearance
        self.members: dict[str, dict[str, set[str]]] = {}
        self.keysets: dict[frozenset, list[str]] = {}

    def see(self, raw: dict[str, Any], source_id: str) -> None:
        """Observe one raw record (after JSON:API flattening, before any mapping)."""
        types = self.types
        for key, value in raw.items():
            kind = type(value).__name__
            seen = types.get(key)
            if seen is None:
                types[key] = {kind}
            elif kind not in seen:
                seen.add(kind)
            if kind == "dict":
                self._members(key, value)
            elif kind == "list":
                for item in value:
                    if isinstance(item, dict):
                        self._members(key, item)
        self.keysets.setdefault(frozenset(raw), []).append(source_id)

    def _members(self, key: str, value: dict) -> None:
        members = self.members.setdefault(key, {})
        for name, item in value.items():
            members.setdefault(name, set()).add(type(item).__name__)

    def as_json(self, member: str, envelope: Any, omitted: dict[str, dict[str, list[str]]]) -> dict[str, Any]:
        keys = list(self.types)
        full = frozenset(keys)
        absent = [
            [sorted(full - keyset, key=keys.index), ids] for keyset, ids in self.keysets.items() if keyset != full
        ]
        absent.sort(key=lambda entry: entry[0])
        return {
            "member": member,
            "envelope": envelope,
            "keys": keys,
            "types": {k: sorted(v) for k, v in self.types.items()},
            "members": {k: {m: sorted(t) for m, t in v.items()} for k, v in self.members.items()},
            "absent": absent,
            "omitted": omitted,
        }


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
    kind, relationships = None, {}
    for resource in resources:
        if not isinstance(resource, dict):
            continue
        kind = kind or resource.get("type")
        for name, body in (resource.get("relationships") or {}).items():
            target = body.get("data") if isinstance(body, dict) else None
            sample = target[0] if isinstance(target, list) and target else target
            found = sample.get("type") if isinstance(sample, dict) else None
            if relationships.get(name) is None:
                relationships[name] = found
    others = {k: v for k, v in document.items() if k not in ("data", "included")}
    return {"type": kind, "relationships": relationships, "single": isinstance(data, dict), "others": others}


def omitted_links(records: dict[str, list], spec, ref, links: list[tuple[str, str]]) -> dict[str, list[str]]:
    """For one list reference of ``spec`` (a session's ``speakers``, a speaker's or track's ``sessions``):
    per record, the targets the database will link it to that the record itself did not list."""
    implied: dict[str, set[str]] = {}
    if ref.inverse:
        for target in records.get(ref.target, []):
            owner = target.refs.get(ref.inverse)
            if owner is not None:
                implied.setdefault(owner, set()).add(target.source_id)
    else:
        for session, speaker in links:
            own, other = (session, speaker) if spec.name == "sessions" else (speaker, session)
            implied.setdefault(own, set()).add(other)
    out: dict[str, list[str]] = {}
    for record in records.get(spec.name, []):
        missing = implied.get(record.source_id, set()) - set(record.refs.get(ref.field) or [])
        if missing:
            out[record.source_id] = sorted(missing)
    return out


def describe(archive: Any, normalisers: list, out: Any, fold) -> dict[str, Any]:
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
                keys = [k for k, (name, _) in normaliser.names.items() if name == ref.field]
                lists = any("list" in normaliser.shape.types.get(k, ()) for k in keys)
                found = omitted_links(out.records, spec, ref, out.links) if lists else {}
                if found:
                    omitted[ref.field] = found
        files[spec.name] = normaliser.shape.as_json(member, envelope, omitted)
    meta = archive.document("meta") if "meta" in archive.members else None
    return {"version": VERSION, "files": files, "meta": meta}
