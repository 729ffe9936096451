"""Every reference checked against the ids the archive really has, before anything is written."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from event_pipeline.model.catalog import BY_NAME, LINKS, MODELS, ModelSpec, Ref
from event_pipeline.read.normalised import Normalised, NormRecord


def check_references(out: Normalised) -> None:
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
    # Built when first needed: a name only when a reference is no id, the records by id only for the targets
    # of inverse lists (a track's sessions). Up front they were 0.3 s and ~25 MiB of every 100k import.
    names = _PerModel(lambda name: _by_label(BY_NAME[name], out.records.get(name, [])))
    by_id = _PerModel(lambda name: {r.source_id: r for r in out.records.get(name, [])})
    links: dict[str, dict[tuple[str, str], None]] = {link.table: {} for link in LINKS}
    for spec in MODELS:
        forward = [ref for ref in spec.refs if not ref.inverse]  # inverse lists: once these are resolved
        for record in out.records.get(spec.name, []):
            refs = record.refs
            for ref in forward:
                if not ref.many:
                    value = refs.get(ref.field)
                    if value is not None and value not in ids[ref.target]:
                        _resolve_by_name(out, spec, record, ref, value, names)
                    continue
                refs[ref.field] = kept = _resolve_many(out, spec, record, ref, ids, names)
                if ref.link is not None and kept:
                    pairs = links[ref.link.table]
                    for target in kept:
                        pairs[ref.link.pair(spec.name, record.source_id, target)] = None
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
    out.links = {table: list(pairs) for table, pairs in links.items()}


class _PerModel(dict):
    """Model name -> a value made by ``make(name)`` the first time it is asked for."""

    def __init__(self, make: Callable[[str], Any]):
        super().__init__()
        self.make = make

    def __missing__(self, name: str) -> Any:
        value = self[name] = self.make(name)
        return value


def _resolve_by_name(
    out: Normalised, spec: ModelSpec, record: NormRecord, ref: Ref, value: str, names: dict[str, dict[str, str]]
) -> None:
    """A reference that is no id of its target: resolved by a unique name, else dangling (an empty link)."""
    resolved = names[ref.target].get(value)
    if resolved is None:
        _dangling(out, spec, record, ref, value, "link left empty")
    record.refs[ref.field] = resolved


def _resolve_many(
    out: Normalised,
    spec: ModelSpec,
    record: NormRecord,
    ref: Ref,
    ids: dict[str, set[str]],
    names: dict[str, dict[str, str]],
) -> list[str]:
    """The ids of a list reference that name records (by id, else by a unique name); warns on the rest."""
    targets = record.refs.get(ref.field) or []
    if ids[ref.target].issuperset(targets):
        return list(targets)  # every one an id (the usual case)
    kept = []
    for target in targets:
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
        label = record.value(spec.label)
        if isinstance(label, str) and (label := label.strip()):
            seen[label] = None if label in seen else record.source_id
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
    raw_refs = record.raw_refs  # read from the spill: once
    if raw_refs and ref.field in raw_refs:
        key, value = raw_refs[ref.field]
        extra = record.extra  # a copy, if the body is spilled: stored again when it changes
        if key not in extra:
            extra[key] = value
            record.replace(extra=extra)


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
