"""Property: whatever an archive holds, reading and normalising it ends cleanly.

Generated JSON of every shape, and mutations of a valid archive (values
swapped for others of any type, keys renamed, bytes flipped), must give
either a normalised archive or a list of problems, never an exception.
"""

from __future__ import annotations

import io
import json
import zipfile

from archives import kebab_event
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from event_pipeline.archive import _array_elements, read_archive
from event_pipeline.normalise import normalise
from event_pipeline.plan import content_hash

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20,
)
FILES = ["event", "sessions", "speakers", "tracks", "microlocations", "session_types", "sponsors", "forms"]


def _zip(tmp_path, files: dict[str, bytes]):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    path = tmp_path / "fuzz.zip"
    path.write_bytes(buffer.getvalue())
    return path


def _check(path) -> None:
    archive = read_archive(path)
    out = normalise(archive)
    for problem in out.problems.errors + out.problems.warnings:
        assert isinstance(str(problem), str)
    if not out.problems.errors:
        assert out.event is not None
        for records in out.records.values():
            for record in records:
                content_hash({**record.values, "extra": record.extra})  # every row can be hashed (and stored)


SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@SETTINGS
@given(st.dictionaries(st.sampled_from(FILES), json_values, min_size=1))
def test_generated_documents(tmp_path, documents):
    _check(_zip(tmp_path, {name: json.dumps(doc).encode() for name, doc in documents.items()}))


@SETTINGS
@given(
    st.sampled_from(FILES[:7]),
    st.integers(min_value=0, max_value=10),
    st.text(max_size=12),
    json_values,
)
def test_mutated_valid_archive(tmp_path, file, index, key, value):
    files = kebab_event()
    target = files[file]
    record = target if isinstance(target, dict) else target[index % len(target)]
    victim = list(record)[index % len(record)]
    record[victim] = value  # any field, including id and references, becomes anything
    record[key] = value  # and an arbitrary key appears
    _check(_zip(tmp_path, {name: json.dumps(doc).encode() for name, doc in files.items()}))


@SETTINGS
@given(st.integers(min_value=0), st.binary(min_size=1, max_size=8))
def test_corrupted_bytes(tmp_path, position, garbage):
    files = {name: json.dumps(doc).encode() for name, doc in kebab_event().items()}
    raw = bytearray(_zip(tmp_path, files).read_bytes())
    at = position % len(raw)
    raw[at : at + len(garbage)] = garbage
    path = tmp_path / "corrupt.zip"
    path.write_bytes(bytes(raw))
    _check(path)


def _decoded(parse, text: str):
    """What a parser makes of ``text``: its value, or the error json.loads would raise (message, position)."""
    try:
        return ("ok", parse(text))
    except json.JSONDecodeError as exc:
        return ("error", exc.msg, exc.pos)
    except RecursionError:
        return ("deep",)


def _streamed(text: str) -> list:
    return list(_array_elements(text, text.index("[")))


@SETTINGS
@given(
    st.lists(json_values, max_size=5),
    st.integers(min_value=0),
    st.sampled_from(["", " ", "]", "[", ",", "}", '"', "1", "x", "\n", ",]", "][", "{}"]),
    st.booleans(),
)
def test_streamed_arrays_parse_as_json_loads_does(items, position, splice, pretty):
    """The record-by-record parser of a sessions/speakers file gives the same records as ``json.loads``,
    and for damaged text the same error at the same position (what the user is told)."""
    text = json.dumps(items, indent=2 if pretty else None)
    assert _decoded(_streamed, text) == _decoded(json.loads, text)
    at = position % (len(text) + 1)
    damaged = text[:at] + splice + text[at:]
    if damaged.lstrip().startswith("["):
        assert _decoded(_streamed, damaged) == _decoded(json.loads, damaged)
