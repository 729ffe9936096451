"""Property: whatever an archive holds, reading and normalising it ends cleanly.

Generated JSON of every shape, and mutations of a valid archive (values
swapped for others of any type, keys renamed, bytes flipped), must give
either a normalised archive or a list of problems, never an exception.
Hostile values (NaN, huge numbers, deep nesting, NUL, lone surrogates, odd
member names) too; and whatever ``validate`` calls VALID, ``import``
writes, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import io
import json
import pickle
import re
import zipfile

from archives import kebab_event
from conftest import import_archive, rows, run_cli
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from event_pipeline.plan.diff import content_hash
from event_pipeline.read.archive import read_archive
from event_pipeline.read.json_text import array_elements
from event_pipeline.read.normalise import normalise

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
                # What the database is sent: strict JSON, text that encodes; and a plan can be pickled.
                json.dumps(record.extra, allow_nan=False).encode("utf-8")
                for value in (record.source_id, record.source_key, *record.values.values()):
                    if isinstance(value, str):
                        assert "\x00" not in value
                        value.encode("utf-8")
        pickle.dumps(out.records)


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
        return ("error", exc.msg, exc.pos, exc.lineno, exc.colno)
    except RecursionError:
        return ("deep",)


def _streamed(text: str, piece: int | None = None) -> list:
    """The elements as the reader streams them, from the text in pieces of ``piece`` characters (whole);
    in pieces, what is parsed is forgotten after each element (so errors are placed from what was dropped)."""
    pieces = [text[i : i + piece] for i in range(0, len(text), piece)] if piece else [text]
    return list(array_elements(pieces, drop_chars=1) if piece else array_elements(pieces))


PIECES = (None, 1, 2, 3, 7)


def _in_pieces(text: str) -> list:
    """What the streaming reader makes of ``text`` whole and in pieces of 1, 2, 3 and 7 characters (a value,
    a number, an escape or a line break split anywhere): each outcome must be json.loads's."""
    return [_decoded(lambda t, piece=piece: _streamed(t, piece), text) for piece in PIECES]


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
    assert _in_pieces(text) == [_decoded(json.loads, text)] * len(PIECES)
    at = position % (len(text) + 1)
    damaged = text[:at] + splice + text[at:]
    if damaged.lstrip().startswith("["):
        assert _in_pieces(damaged) == [_decoded(json.loads, damaged)] * len(PIECES)


# ---------------------------------------------------------------------------
# Hostile values (issue 12): whatever validate calls VALID imports, on both databases

BIG_LITERAL = "__BIG_LITERAL__"  # replaced by an integer literal json.dumps cannot write


def _deep(levels: int) -> str:
    """A placeholder for ``levels`` nested arrays, written as text (json.dumps recurses, and fails
    where the archive's reader must not)."""
    return f"__DEEP_{levels}__"


hostile_values = st.one_of(
    st.sampled_from(
        [
            float("nan"),
            float("inf"),
            float("-inf"),
            2**31 - 1,
            2**31,
            -(2**31) - 1,
            2**63,
            10**30,
            1e308,
            BIG_LITERAL,
            "1e400",
            "nan",
            "１",
            "1#2",
            "",
            "x" * 300,
        ]
    ),
    st.sampled_from([3, 60, 61, 62, 63, 64, 300, 2000]).map(_deep),
    st.text(st.sampled_from(["a", "1", "\x00", "\ud800", "\udc00", "１", "#", "é", "😀", " "]), max_size=6),
    st.dictionaries(st.sampled_from(["k", "\x00", "\udfff", "id", "a\x00b"]), json_values, max_size=2),
    json_values,
)
member_names = st.sampled_from(
    ["__MACOSX/._event", "images/ü.png", "images/../escape", "/absolute", "images/a\\b.png", ".DS_Store", "x.zip"]
)


def _hostile_zip(path, files: dict, prefix: str, members: list[str]):
    with zipfile.ZipFile(path, "w") as zf:
        for name, doc in files.items():
            text = json.dumps(doc)  # NaN and Infinity as the tokens; non-ASCII (surrogates too) escaped
            text = text.replace(f'"{BIG_LITERAL}"', "7" * 4400)
            text = re.sub(r'"__DEEP_(\d+)__"', lambda m: "[" * int(m.group(1)) + "]" * int(m.group(1)), text)
            zf.writestr(prefix + name, text)
        for name in members:
            zf.writestr(name, b"x")
    return path


@st.composite
def hostile_archives(draw):
    files = kebab_event()
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        file = draw(st.sampled_from(FILES[:7]))
        target = files[file]
        record = target if isinstance(target, dict) else draw(st.sampled_from(target))
        key = draw(st.sampled_from([*record, "id", "extra-field", "e\udc00", "n\x00"]))
        record[key] = draw(hostile_values)
    prefix = draw(st.sampled_from(["", "export/", "événement/"]))
    members = draw(st.lists(member_names, max_size=2, unique=True))
    return files, prefix, members


@SETTINGS
@given(hostile_archives())
def test_hostile_values_never_escape_reading(tmp_path, drawn):
    files, prefix, members = drawn
    _check(_hostile_zip(tmp_path / "hostile.zip", files, prefix, members))


_RUNS = iter(range(10**9))


@settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck))
@given(hostile_archives())
def test_valid_means_importable_on_both_databases(db_url, tmp_path, drawn):
    """validate VALID implies import SUCCESS, INVALID implies FAILURE with the same errors, and no
    run leaves its import_jobs row RUNNING."""
    files, prefix, members = drawn
    path = _hostile_zip(tmp_path / "hostile.zip", files, prefix, members)
    key = f"fuzz-{next(_RUNS)}"
    _, validated, _ = run_cli("validate", str(path), "--database-url", db_url, "--key", key)
    code, imported = import_archive(path, db_url, "--key", key)
    assert validated["state"] in ("VALID", "INVALID"), validated
    if validated["state"] == "VALID":
        assert (code, imported["state"]) == (0, "SUCCESS"), (validated, imported)
    else:
        assert (code, imported["state"]) == (1, "FAILURE"), imported
        assert imported["errors"] == validated["errors"]
    assert rows(db_url, "select run_id from import_jobs where state = 'RUNNING'") == []
