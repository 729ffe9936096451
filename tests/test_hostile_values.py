"""Hostile values (issue 12, items 1-4): each is a located problem, never an exception, and the
database never refuses what ``validate`` called VALID.

Each case runs ``validate`` and ``import`` on SQLite and PostgreSQL and checks that they agree, the
exact errors (written out here from the archive's JSON), the rows, and that ``import_jobs`` is left
in a final state. The shared case archives are used where they exist; others are built here.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import random
import zipfile
from pathlib import Path

import pytest
import sqlalchemy as sa
from archives import kebab_event, write_zip
from conftest import dump, import_archive, rows, run_cli

from event_pipeline.db import get_engine
from event_pipeline.problems import ImportFailed
from event_pipeline.read import archive as archive_module

CASES = Path(
    os.environ.get("EVENT_PIPELINE_HOSTILE_CASES", Path(__file__).resolve().parents[2] / "shared/cases/hostile")
)


def case(name: str) -> Path:
    path = CASES / name
    if not path.exists():
        pytest.skip(f"hostile case archives not found at {CASES}")
    return path


def _both(path: Path, url: str, key: str | None = None) -> tuple[dict, dict]:
    """``validate`` then ``import`` of one archive; they must agree (VALID and SUCCESS, or INVALID and
    FAILURE with the same errors), and no import_jobs row may be left RUNNING."""
    extra = ("--key", key) if key else ()
    _, validated, _ = run_cli("validate", str(path), "--database-url", url, *extra)
    code, imported = import_archive(path, url, *extra)
    if validated["state"] == "VALID":
        assert (code, imported["state"]) == (0, "SUCCESS"), imported
        # The import may add the media step's warnings (validate does not fetch media).
        assert [w for w in imported["warnings"] if w in validated["warnings"]] == validated["warnings"]
    else:
        assert validated["state"] == "INVALID", validated
        assert (code, imported["state"]) == (1, "FAILURE"), imported
        assert imported["errors"] == validated["errors"]
        assert imported["error"] == validated["error"]
    assert rows(url, "select state from import_jobs where state = 'RUNNING'") == []
    return validated, imported


# Written with the schema (the Alembic revision too) or by every run, whatever the archive: not import data.
BOOKKEEPING = ("import_jobs", "id_blocks", "database_identity", "media_claims", "alembic_version_event_pipeline")


def _refused(path: Path, url: str, errors: list[dict], key: str | None = None) -> dict:
    """The archive is refused with exactly ``errors``, nothing is written, the job row says FAILURE."""
    before = dump(url, *BOOKKEEPING) if _has_schema(url) else None
    validated, imported = _both(path, url, key)
    assert imported["errors"] == errors
    assert imported["errors_total"] == len(errors)
    after = dump(url, *BOOKKEEPING)
    assert after == (before if before is not None else {name: [] for name in after})  # nothing written
    state, stored = rows(url, "select state, errors from import_jobs")[-1]
    assert state == "FAILURE"
    assert (json.loads(stored) if isinstance(stored, str) else stored) == errors
    return imported


def _has_schema(url: str) -> bool:
    """Whether the database has tables yet (the first import creates them)."""
    return sa.inspect(get_engine(url, create_schema=False)).has_table("events")


def _error(file: str, record_id: str | None, field: str | None, message: str) -> dict:
    return {"file": file, "record_id": record_id, "field": field, "message": message}


def _member(path: Path, name: str) -> str:
    with zipfile.ZipFile(path) as zf:
        return zf.read(name).decode()


def _raw_zip(path: Path, files: dict[str, str]) -> Path:
    """A zip of data files given as raw JSON text (for literals ``json.dumps`` cannot write)."""
    with zipfile.ZipFile(path, "w") as zf:
        for name, text in files.items():
            zf.writestr(name, text)
    return path


def _ascii_zip(path: Path, files: dict) -> Path:
    """Like ``write_zip``, with non-ASCII escaped (``\\udc00``), as exports from Python servers are."""
    return _raw_zip(path, {name: json.dumps(doc) for name, doc in files.items()})


def _kebab_text(**raw: str) -> dict[str, str]:
    files = {name: json.dumps(doc) for name, doc in kebab_event().items()}
    files.update(raw)
    return files


OUT_OF_RANGE = "is out of range for the integer column floor (-2147483648 to 2147483647)"


# ---------------------------------------------------------------------------
# Item 1: every problem is located; nothing escapes as an exception


def test_id_of_5000_digits(db_url):
    path = case("id-5000-digits.zip")
    long_id = json.loads(_member(path, "sessions"))[1]["id"]
    assert len(long_id) == 5000
    shown = long_id[: 120 - len("… (5000 characters)")] + "… (5000 characters)"  # record ids are cut at 120
    message = "id has 5000 characters, more than the 255 the source_id column holds"
    _refused(path, db_url, [_error("sessions", shown, "id", message)])


def test_integer_literals_too_long_for_python_are_located_with_the_other_problems(db_url, tmp_path):
    files = kebab_event()
    files["sessions"][1]["id"] = "__BIG_ID__"
    files["sessions"][2]["big"] = "__BIG_VALUE__"
    sessions = json.dumps(files["sessions"])
    sessions = sessions.replace('"__BIG_ID__"', "9" * 5000).replace('"__BIG_VALUE__"', "-" + "1" * 4400)
    tracks = json.dumps([{"id": 1, "name": "Main"}, {"id": 2, "name": ["not", "text"]}])
    path = _raw_zip(tmp_path / "huge.zip", _kebab_text(sessions=sessions, tracks=tracks))
    _refused(
        path,
        db_url,
        [
            _error("tracks", "2", "name", "Input should be a valid string (got ['not', 'text'])"),
            _error(
                "sessions",
                None,
                "id",
                "record #2: id is unusable (<an integer of 5000 digits is longer than Python reads>)",
            ),
            _error(
                "sessions",
                "3",
                "big",
                "an integer of 4400 digits is longer than Python reads; the database cannot store it",
            ),
        ],
    )


def test_lone_surrogate_in_a_reference(db_url):
    path = case("lone-surrogate-in-reference.zip")
    assert json.loads(_member(path, "sessions"))[0]["track"] == {"id": "\ud800"}
    message = "reference '\\ud800' contains a lone surrogate (\\ud800), which is not valid Unicode"
    imported = _refused(path, db_url, [_error("sessions", "1", "track", message)])
    json.dumps(imported, ensure_ascii=False).encode("utf-8")  # the result itself always encodes


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ("value", ("sessions", "1", "title", "contains a lone surrogate (\\udc00), which is not valid Unicode")),
        ("id", ("sessions", "x\\udc00", "id", "id contains a lone surrogate (\\udc00), which is not valid Unicode")),
        (
            "extra key",
            ("sessions", "1", "k\\udc00", "field name contains a lone surrogate (\\udc00), which is not valid Unicode"),
        ),
        (
            "extra value",
            (
                "sessions",
                "1",
                "notes",
                "text at [1].a contains a lone surrogate (\\udc00), which is not valid Unicode (kept in extra)",
            ),
        ),
        (
            "speaker ref",
            (
                "speakers",
                "1",
                "sessions",
                "reference 'x\\udc00' contains a lone surrogate (\\udc00), which is not valid Unicode",
            ),
        ),
    ],
)
def test_lone_surrogates_anywhere(db_url, tmp_path, where, expected):
    files = kebab_event()
    session, speaker = files["sessions"][0], files["speakers"][0]
    if where == "value":
        session["title"] = "Open\udc00ing"
    elif where == "id":
        files["sessions"].append({"id": "x\udc00", "title": "odd"})
    elif where == "extra key":
        session["k\udc00"] = 1
    elif where == "extra value":
        session["notes"] = ["fine", {"a": "b\udc00"}]
    else:
        speaker["sessions"] = [{"id": "x\udc00"}]
    _refused(_ascii_zip(tmp_path / "surrogate.zip", files), db_url, [_error(*expected)])


def test_nan_and_infinity(db_url):
    path = case("nan-and-infinity.zip")
    assert '"latitude": NaN, "longitude": Infinity, "foo": NaN' in _member(path, "microlocations")
    _refused(
        path,
        db_url,
        [
            _error("microlocations", "1", "latitude", "NaN is not a finite number; the database cannot store it"),
            _error("microlocations", "1", "longitude", "Infinity is not a finite number; the database cannot store it"),
            _error("microlocations", "1", "foo", "NaN is not a finite number; the database cannot store it"),
        ],
    )


def test_non_finite_numbers_from_overflow_and_text(db_url, tmp_path):
    rooms = '[{"id": 1, "name": "A", "latitude": 1e400, "longitude": "nan", "more": [1, {"x": -1e999}]}]'
    path = _raw_zip(tmp_path / "inf.zip", _kebab_text(microlocations=rooms))
    _refused(
        path,
        db_url,
        [
            _error(
                "microlocations",
                "1",
                "latitude",
                "1e400 is beyond the largest floating-point number; the database cannot store it",
            ),
            _error(
                "microlocations",
                "1",
                "more",
                "-1e999 is beyond the largest floating-point number (at more[1].x); the database cannot store it",
            ),
            _error("microlocations", "1", "longitude", "nan is not a finite number; the database cannot store it"),
        ],
    )


def test_column_rules_come_from_the_schema():
    from event_pipeline.model.schema import SOURCE_ID_LENGTH, TABLES
    from event_pipeline.read.storable import ColumnRule, table_rules

    rooms = table_rules(TABLES["microlocations"])
    assert rooms["floor"] == ColumnRule("floor", "int", -(2**31), 2**31 - 1)
    assert rooms["latitude"] == ColumnRule("latitude", "float")
    assert rooms["source_id"] == ColumnRule("source_id", "text", length=SOURCE_ID_LENGTH) and SOURCE_ID_LENGTH == 255
    assert rooms["extra"] == ColumnRule("extra", "json")
    # Every column of every table has a rule, from its type alone.
    for table in TABLES.values():
        for column in table.columns:
            rule = table_rules(table)[column.name]
            if isinstance(column.type, sa.Integer):
                assert (rule.kind, rule.high) == ("int", 2**31 - 1)


def test_nan_in_an_unmapped_field_does_not_poison_the_key(db_url):
    v1, v2 = case("nan-in-unmapped-field.v1.zip"), case("nan-in-unmapped-field.v2-clean.zip")
    message = "NaN is not a finite number; the database cannot store it"
    _refused(v1, db_url, [_error("sessions", "1", "foo", message)], key="nan-key")
    validated, imported = _both(v2, db_url, key="nan-key")
    assert imported["state"] == "SUCCESS"
    titles = [t["title"] for t in json.loads(_member(v2, "sessions"))]
    assert sorted(r[0] for r in rows(db_url, "select title from sessions")) == sorted(titles) == ["S1", "fixed"]
    code, again = import_archive(v2, db_url, "--key", "nan-key", "--force")
    assert (code, again["state"]) == (0, "SUCCESS")
    assert [r[0] for r in rows(db_url, "select state from import_jobs order by id")] == [
        "FAILURE",
        "SUCCESS",
        "SUCCESS",
    ]


def test_nesting_500_deep(db_url):
    path = case("nesting-500-deep.zip")
    foo = json.loads(_member(path, "sessions"))[0]["foo"]
    depth = 0
    while isinstance(foo, list):
        depth, foo = depth + 1, (foo[0] if foo else None)
    # The file's array, the record, then the value's own levels.
    message = f"nested {2 + depth} levels deep (limit max_json_depth=64; raise it with EVENT_PIPELINE_MAX_JSON_DEPTH)"
    _refused(path, db_url, [_error("sessions", "1", "foo", message)])


def test_the_depth_limit_is_a_setting(db_url, tmp_path, monkeypatch):
    deep: list = []
    for _ in range(99):
        deep = [deep]
    files = kebab_event()
    files["sessions"][0]["notes"] = deep  # 100 levels of lists, 102 counted from the file's top
    path = write_zip(tmp_path / "deep.zip", files)
    hint = "limit max_json_depth=64; raise it with EVENT_PIPELINE_MAX_JSON_DEPTH"
    _refused(path, db_url, [_error("sessions", "1", "notes", f"nested 102 levels deep ({hint})")])
    monkeypatch.setenv("EVENT_PIPELINE_MAX_JSON_DEPTH", "102")
    _both(path, db_url)
    (extra,) = rows(db_url, "select extra from sessions where source_id = '1'")[0]
    assert (json.loads(extra) if isinstance(extra, str) else extra)["notes"] == deep


def test_nesting_beyond_the_parser_is_a_located_error(db_url, tmp_path):
    files = _kebab_text(tracks="[" * 5000 + "]" * 5000)
    path = _raw_zip(tmp_path / "deeper.zip", files)
    hint = "limit max_json_depth=64; raise it with EVENT_PIPELINE_MAX_JSON_DEPTH"
    _refused(path, db_url, [_error("tracks", None, None, f"invalid JSON: nested too deeply ({hint})")])


# ---------------------------------------------------------------------------
# Item 2: validation covers what the database refuses, the same on both


def test_integer_out_of_column_range(db_url):
    path = case("int-out-of-column-range.zip")
    floor = json.loads(_member(path, "microlocations"))[0]["floor"]
    assert floor == 2**31
    _refused(path, db_url, [_error("microlocations", "1", "floor", f"{floor} {OUT_OF_RANGE}")])


def test_integer_range_edges(db_url, tmp_path):
    files = kebab_event()
    files["microlocations"][0]["floor"] = 2**31 - 1
    files["microlocations"][1]["floor"] = -(2**31)
    _both(write_zip(tmp_path / "edges.zip", files), db_url)
    assert sorted(rows(db_url, "select floor from microlocations")) == [(-(2**31),), (2**31 - 1,)]
    files["microlocations"][1]["floor"] = str(-(2**31) - 1)  # as text: converted, then out of range
    _refused(
        write_zip(tmp_path / "below.zip", files),
        db_url,
        [_error("microlocations", "2", "floor", f"{-(2**31) - 1} {OUT_OF_RANGE}")],
        key="other",
    )


def test_nul_in_id(db_url):
    path = case("nul-in-id.zip")
    assert json.loads(_member(path, "sessions"))[1]["id"] == "a\x00b"
    message = "id contains a NUL character (\\u0000), which the database cannot store"
    _refused(path, db_url, [_error("sessions", "a\\u0000b", "id", message)])


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        (
            "extra key",
            (
                "sessions",
                "1",
                "a\\u0000",
                "field name contains a NUL character (\\u0000), which the database cannot store",
            ),
        ),
        (
            "extra value",
            (
                "sessions",
                "1",
                "notes",
                "key 'x\\u0000' contains a NUL character (\\u0000), which the database cannot store (kept in extra)",
            ),
        ),
        (
            "reference",
            (
                "sessions",
                "1",
                "track",
                "reference '1\\u0000' contains a NUL character (\\u0000), which the database cannot store",
            ),
        ),
        (
            "object field",
            (
                "event",
                "1",
                "copyright",
                "text at holder contains a NUL character (\\u0000), which the database cannot store",
            ),
        ),
    ],
)
def test_nul_anywhere(db_url, tmp_path, where, expected):
    files = kebab_event()
    session = files["sessions"][0]
    if where == "extra key":
        session["a\x00"] = 1
    elif where == "extra value":
        session["notes"] = {"x\x00": 1}
    elif where == "reference":
        session["track"] = {"id": "1\x00"}
    else:
        files["event"]["copyright"] = {"holder": "ACME\x00"}
    _refused(write_zip(tmp_path / "nul.zip", files), db_url, [_error(*expected)])


def test_generated_keys_never_take_a_real_id(db_url, tmp_path):
    files = kebab_event()
    files["sessions"] = [
        {"id": 1, "title": "A"},
        {"id": 1, "title": "B"},
        {"id": "1#2", "title": "C"},
    ]
    files["speakers"] = [{"id": 1, "name": "Ann", "sessions": [{"id": "1#2"}]}]
    validated, imported = _both(write_zip(tmp_path / "keys.zip", files), db_url)
    assert sorted(rows(db_url, "select source_id, source_key, title from sessions")) == [
        ("1", "1", "A"),
        ("1", "1#3", "B"),
        ("1#2", "1#2", "C"),
    ]
    linked = rows(
        db_url,
        "select s.title from session_speakers l join sessions s on s.id = l.session_id",
    )
    assert linked == [("C",)]  # the reference to "1#2" is the real record of that id


def test_full_width_digits_are_not_ascii_digits(db_url, tmp_path):
    files = kebab_event()
    files["sessions"] = [
        {"id": 1, "title": "one"},
        {"id": "１", "title": "full-width one"},
        {"id": "+007", "title": "seven"},
    ]
    files["speakers"] = [{"id": 1, "name": "Ann", "sessions": [{"id": "１"}, {"id": 7}]}]
    _both(write_zip(tmp_path / "width.zip", files), db_url)
    assert sorted(rows(db_url, "select source_id, title from sessions")) == [
        ("1", "one"),
        ("7", "seven"),
        ("１", "full-width one"),
    ]
    linked = rows(db_url, "select s.title from session_speakers l join sessions s on s.id = l.session_id")
    assert sorted(linked) == [("full-width one",), ("seven",)]


def test_key_columns_take_their_length_from_the_schema(db_url, tmp_path):
    files = kebab_event()
    files["tracks"] = [{"id": "t" * 255, "name": "longest"}, {"id": "u" * 256, "name": "too long"}]
    message = "id has 256 characters, more than the 255 the source_id column holds"
    _refused(
        write_zip(tmp_path / "long.zip", files),
        db_url,
        [_error("tracks", "u" * (120 - 18) + "… (256 characters)", "id", message)],
    )
    files["tracks"] = [{"id": "t" * 255, "name": "longest"}, {"id": "t" * 255, "name": "repeat"}]
    _both(write_zip(tmp_path / "repeat.zip", files), db_url)
    assert sorted(rows(db_url, "select source_key, name from tracks")) == [
        ("t" * 255, "longest"),
        ("t" * 255 + "#2", "repeat"),
    ]


# ---------------------------------------------------------------------------
# Item 3: bounded work, and limits named in their errors


def test_ignored_members_count_against_the_member_limit(db_url, tmp_path, monkeypatch):
    files = kebab_event()
    path = write_zip(tmp_path / "mac.zip", files)
    with zipfile.ZipFile(path, "a") as zf:
        for i in range(30):
            zf.writestr(f"__MACOSX/._{i}", b"")
    members = len(files) + 30
    monkeypatch.setenv("EVENT_PIPELINE_MAX_MEMBERS", str(members - 1))
    message = (
        f"archive has {members} members (limit max_members={members - 1}; raise it with EVENT_PIPELINE_MAX_MEMBERS)"
    )
    _refused(path, db_url, [_error("mac.zip", None, None, message)])
    monkeypatch.setenv("EVENT_PIPELINE_MAX_MEMBERS", str(members))
    _both(path, db_url)


def test_problems_are_listed_up_to_a_limit_and_counted_by_kind(db_url, tmp_path, monkeypatch):
    monkeypatch.setenv("EVENT_PIPELINE_MAX_PROBLEMS_LISTED", "3")
    monkeypatch.setenv("EVENT_PIPELINE_MAX_PROBLEMS", "10")
    files = kebab_event()
    files["sessions"] = [7] * 40 + [{"id": 1, "title": "ok", "floor": 1}]
    files["tracks"] = [{"id": i, "name": ["x"]} for i in range(1, 6)]
    path = write_zip(tmp_path / "many.zip", files)
    validated, imported = _both(path, db_url)
    not_object = [_error("sessions", None, None, f"record #{i} is not an object but int") for i in range(1, 41)]
    bad_name = [_error("tracks", str(i), "name", "Input should be a valid string (got ['x'])") for i in range(1, 6)]
    assert imported["errors"] == bad_name[:3]  # tracks are read before sessions
    assert imported["errors_total"] == 45
    assert imported["error_kinds"] == {
        "sessions: record #… is not an object but int": 40,
        "tracks: Input should be a valid string (got […])": 5,
    }
    assert imported["error"] == f"{bad_name[0]['file']}, id 1, name: {bad_name[0]['message']} (and 44 more problems)"
    assert imported["notice"] == (
        "3 of 45 errors listed (limit max_problems_listed=3; raise it with EVENT_PIPELINE_MAX_PROBLEMS_LISTED); "
        "import_jobs keeps the first 10 (limit max_problems=10; raise it with EVENT_PIPELINE_MAX_PROBLEMS)"
    )
    ((stored, counts),) = rows(db_url, "select errors, result from import_jobs")
    stored = json.loads(stored) if isinstance(stored, str) else stored
    counts = json.loads(counts) if isinstance(counts, str) else counts
    assert stored == bad_name + not_object[:5]
    assert counts["errors_total"] == 45
    assert counts["error_kinds"] == imported["error_kinds"]


def test_a_million_bad_records_give_a_bounded_result(db_url, tmp_path):
    files = kebab_event()
    numbers = random.Random(12).choices(range(10**6), k=1_000_000)  # varied: no compression-ratio refusal
    files["sessions"] = "[" + ",".join(map(str, numbers)) + "]"
    path = write_zip(tmp_path / "million.zip", files)
    _, out = run_cli("validate", str(path), "--database-url", db_url)[1:]
    last = out.strip().splitlines()[-1]
    assert len(last.encode()) < 20_000
    payload = json.loads(last)
    assert payload["errors_total"] == 1_000_000
    assert payload["error_kinds"] == {"sessions: record #… is not an object but int": 1_000_000}
    assert len(payload["errors"]) == 50


# ---------------------------------------------------------------------------
# Item 4: the archive is read once


def _versions(tmp_path: Path) -> tuple[Path, Path]:
    one = kebab_event()
    two = kebab_event()
    for session in two["sessions"]:
        session["title"] = f"v2 {session['title']}"
    two["sessions"].append({"id": 9, "title": "v2 only"})
    return write_zip(tmp_path / "v1.zip", one), write_zip(tmp_path / "v2.zip", two)


def test_replacing_the_file_during_an_import_cannot_mix_versions(db_url, tmp_path, monkeypatch):
    v1, v2 = _versions(tmp_path)
    target = tmp_path / "drop" / "event.zip"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(v1.read_bytes())
    real = archive_module.snapshot
    replaced = []

    def snapshot_then_replace(path):
        copied = real(path)
        if not replaced:  # the first read of this import: then the file is overwritten in place
            target.write_bytes(v2.read_bytes())
            replaced.append(path)
        return copied

    monkeypatch.setattr(archive_module, "snapshot", snapshot_then_replace)
    code, result = import_archive(target, db_url)
    assert (code, result["state"]) == (0, "SUCCESS"), result
    v1_sha = hashlib.sha256(v1.read_bytes()).hexdigest()
    assert replaced and target.read_bytes() == v2.read_bytes()
    titles = sorted(r[0] for r in rows(db_url, "select title from sessions"))
    assert titles == sorted(s["title"] for s in kebab_event()["sessions"])  # every row from version 1
    assert rows(db_url, "select archive_sha256 from events") == [(v1_sha,)]
    assert rows(db_url, "select state, archive_sha256 from import_jobs") == [("SUCCESS", v1_sha)]


def test_a_later_read_of_a_replaced_file_is_refused(tmp_path):
    """A re-execution from failure reads the archive again: only if it still has the validated bytes."""
    from event_pipeline.importer import validate_archive

    v1, v2 = _versions(tmp_path)
    target = tmp_path / "event.zip"
    target.write_bytes(v1.read_bytes())
    validated = pickle.loads(pickle.dumps(validate_archive(get_engine("sqlite://"), target, "k", reserve=False)))
    target.write_bytes(v2.read_bytes())
    with pytest.raises(ImportFailed, match="the archive changed since this run validated it"):
        _ = validated.normalised
    target.write_bytes(v1.read_bytes())
    assert [r.values["title"] for r in validated.normalised.records["sessions"]] == ["Opening", "Deep dive", "Closing"]


def test_member_name_starting_with_nul(db_url, tmp_path):
    path = write_zip(tmp_path / "nulname.zip", kebab_event())
    with zipfile.ZipFile(path, "a") as zf:
        zf.writestr("@hidden", b"x")
    # zipfile cannot write a name starting with NUL; patched into the bytes, it reads back as "".
    path.write_bytes(path.read_bytes().replace(b"@hidden", b"\x00hidden"))
    message = "a member has an empty name (or one starting with NUL)"
    _refused(path, db_url, [_error("nulname.zip", None, None, message)])
