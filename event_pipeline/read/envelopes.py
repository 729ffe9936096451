"""Where a model's records sit in a file: a bare list, a wrapper object, a JSON:API document, the event.

Every generation of the format is read by the same few rules: the exports
write bare lists; the 2015-2016 API dump wraps them (``{"sessions": [...]}``);
the reference server's v1 API answers JSON:API documents whose ``included``
resources may carry models the archive has no file for.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from event_pipeline.model.catalog import BY_NAME, EVENT, ModelSpec
from event_pipeline.problems import Problems
from event_pipeline.read.data_files import Archive
from event_pipeline.read.fields import fold_key


def _is_jsonapi(document: Any) -> bool:
    """A JSON:API document (``{"data": ..., "jsonapi": ...}``), as the reference server's v1 GET API answers."""
    if not isinstance(document, dict) or "data" not in document:
        return False
    data = document["data"]
    sample = data[0] if isinstance(data, list) and data else data
    return data == [] or (isinstance(sample, dict) and ("attributes" in sample or "type" in sample))


def resource_record(resource: Any) -> Any:
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
    file is unwrapped by the same rule; see ``one_event``."""
    if _is_jsonapi(document):
        if included is not None and isinstance(document.get("included"), list):
            included.extend(document["included"])
        data = document["data"]
        return [resource_record(r) for r in data] if isinstance(data, list) else resource_record(data)
    if isinstance(document, dict):
        names = {fold_key(n) for n in (spec.name, spec.table, *spec.files)}
        wrapped = [v for k, v in document.items() if fold_key(k) in names and isinstance(v, (list, dict))]
        if len(wrapped) == 1 and (isinstance(wrapped[0], list) or spec is EVENT):
            return wrapped[0]
    return document


def one_event(document: Any, file: str, problems: Problems, included: list | None = None) -> dict | None:
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


def model_documents(
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
                return f"{event_file(archive)}:{key}", value
    return None


def event_file(archive: Archive) -> str:
    return next((name for name in EVENT.files if name in archive.members), EVENT.files[0])


def _event_document(archive: Archive) -> Any:
    file = event_file(archive)
    document = archive.document(file)
    return one_event(document, file, Problems()) if document is not None else None


def included_by_model(included: list, without_file: list[ModelSpec]) -> list[tuple[ModelSpec, str, list]]:
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
