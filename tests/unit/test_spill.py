"""Record bodies kept in a temporary file (``read/spill.py``): what goes in comes back, type for type."""

from __future__ import annotations

import errno
import pickle
import tempfile
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta, timezone

import pytest
from archives import kebab_event, write_zip

from event_pipeline.read import private_copy
from event_pipeline.read import shape as shape_module
from event_pipeline.read import spill as spill_module
from event_pipeline.read.archive import read_archive
from event_pipeline.read.normalise import normalise
from event_pipeline.read.normalised import NormRecord
from event_pipeline.read.shape import FileShape
from event_pipeline.read.spill import BodySpill, body_digest
from event_pipeline.read.storable import NotStorable

TIMES = ("starts_at", "ends_at")


def _typed(value):
    """A value with the type of every part spelled out: ``==`` takes 1, 1.0 and True for one value."""
    if isinstance(value, dict):
        return {k: _typed(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_typed(v) for v in value]
    if isinstance(value, datetime):
        return ("datetime", value.isoformat(), value.tzinfo)
    return (type(value).__name__, repr(value))


BODIES = [
    # the usual: text, numbers of each kind, a UTC time, nested JSON in extra
    (
        {"title": "Keynote", "starts_at": datetime(2016, 3, 18, 1, 30, tzinfo=UTC), "ends_at": None, "n": 1},
        {"a": 1.0, "b": True, "c": -0.0, "d": [1, "x", None, {"e": 0.1}], "f": "nul \x00 kept"},
    ),
    ({"title": None, "starts_at": datetime(1, 1, 1, 0, 0, 0, 5, tzinfo=UTC), "ends_at": None}, {}),
    # no exact JSON for these: pickled, given back all the same
    ({"title": "naive", "starts_at": datetime(2016, 3, 18, 1, 30), "ends_at": None}, {}),
    ({"title": "+08", "starts_at": datetime(2016, 3, 18, 9, 30, tzinfo=timezone(timedelta(hours=8)))}, {}),
    ({"title": "big"}, {"huge": 2**70, "nan": NotStorable("NaN")}),
    ({"title": "a time as text", "starts_at": "2016-03-18T01:30:00+00:00"}, {}),
]


def test_a_body_comes_back_type_for_type_and_its_digest_is_the_content_s():
    spill = BodySpill()
    numbers = [spill.add(values, extra, TIMES) for values, extra in BODIES]
    assert numbers == list(range(len(BODIES))) and len(spill) == len(BODIES)
    for number, (values, extra) in zip(numbers, BODIES, strict=True):
        loaded_values, loaded_extra = spill.load(number)
        assert _typed(loaded_values) == _typed(values) and list(loaded_values) == list(values)
        assert _typed(loaded_extra) == _typed(extra) and list(loaded_extra) == list(extra)
        assert spill.digest(number) == body_digest(values, extra)
    # a copy each time: changing what was loaded changes nothing stored
    spill.load(0)[0]["title"] = "changed"
    assert spill.load(0)[0]["title"] == "Keynote"
    # the digest sees values, key order and the kind of a number
    assert body_digest({"a": 1}, {}) != body_digest({"a": 1.0}, {}) != body_digest({"a": True}, {})
    assert body_digest({}, {"a": 1, "b": 2}) != body_digest({}, {"b": 2, "a": 1})


def test_bodies_are_read_back_wherever_they_are_and_from_many_threads():
    spill = BodySpill()
    bodies = [({"title": f"session {i}", "abstract": "x" * (i % 5000)}, {"i": i}) for i in range(3000)]
    numbers = [spill.add(values, extra) for values, extra in bodies]  # ~4.6 MB: several writes to the file
    assert spill.size() > 4_000_000
    assert spill.load(numbers[-1]) == bodies[-1]  # the last ones were still waiting to be written
    with ThreadPoolExecutor(4) as pool:
        loaded = list(pool.map(spill.load, reversed(numbers)))
    assert loaded == list(reversed(bodies))
    with pytest.raises(TypeError, match="not pickled"):
        pickle.dumps(spill)


def test_a_spilled_record_reads_its_body_keeps_what_it_was_told_and_pickles_whole():
    spill = BodySpill()
    start = datetime(2016, 3, 18, 1, 30, tzinfo=UTC)
    record = NormRecord("7", "7", {"title": "Talk", "slides_url": "/s.pdf", "starts_at": start}, {}, {"k": [1]})
    in_memory = NormRecord("7", "7", dict(record.values), {}, dict(record.extra))
    record.spill(spill, keep=("title", "slides_url"), times=("starts_at",))
    assert record == in_memory and record.digest() == in_memory.digest()
    assert record.values["starts_at"] == start and record.extra == {"k": [1]}

    def no_read(index):
        raise AssertionError("the body was read")

    spill.load = no_read  # type: ignore[method-assign]
    assert record.value("title") == "Talk" and record.value("slides_url") == "/s.pdf"
    with pytest.raises(AssertionError, match="the body was read"):
        record.value("starts_at")
    del spill.load

    record.replace(extra={"k": [1], "kept": "raw"})  # stored again: the next read sees it
    assert record.extra == {"k": [1], "kept": "raw"} and record.values["title"] == "Talk"
    record.replace(values={**record.values, "title": "Another"})
    assert record.value("title") == "Another" and record.values["starts_at"] == start
    assert record.digest() != in_memory.digest()

    copy = pickle.loads(pickle.dumps(record))  # the body travels with it, the spill does not
    assert copy == record and copy.values["title"] == "Another"


def test_the_raw_values_of_unresolved_references_are_spilled_with_the_body():
    spill = BodySpill()
    raw = {"sessions": ("sessions", [{"id": 1, "title": "Talk"}, {"id": 2, "title": "Other"}])}
    record = NormRecord("5", "5", {"name": "Ann"}, {"sessions": ["1", "2"]}, {}, None, raw)
    record.spill(spill)
    assert len(spill) == 2  # the body, then the raw values
    assert record.raw_refs == raw and record.raw_refs is not record.raw_refs  # read back each time
    record.raw_refs = None  # once every reference is resolved
    assert record.raw_refs is None


def test_a_normalised_archive_keeps_its_records_bodies_in_its_spill(tmp_path):
    sessions = [
        {"id": i, "title": f"Talk {i}", "starts-at": "2016-03-18T09:30:00+08:00", "video-url": f"/v{i}.mp4"}
        for i in range(1, 4)
    ]
    path = write_zip(tmp_path / "a.zip", kebab_event(sessions=sessions, speakers=[]))
    with read_archive(path) as archive:
        out = normalise(archive)
    assert out.problems.errors == [] and out.problems.warnings == []
    records = out.records["sessions"]
    # each record's body once: the event, 1 social link, 2 rooms, 2 tracks, 1 type, 1 sponsor, 3 sessions
    assert out.spill is not None and len(out.spill) == sum(map(len, out.records.values())) == 11
    assert [r.values["title"] for r in records] == ["Talk 1", "Talk 2", "Talk 3"]
    assert [r.values["starts_at"] for r in records] == [datetime(2016, 3, 18, 1, 30, tzinfo=UTC)] * 3
    assert [r.value("video_url") for r in records] == ["/v1.mp4", "/v2.mp4", "/v3.mp4"]
    assert out.records["session_types"][0].values["length_minutes"] == 30  # derived as it was read


@pytest.mark.parametrize("in_memory", [0, 1, 1000])
def test_the_first_object_given_for_each_reference_target_is_spilled_and_the_shape_is_the_same(
    tmp_path, monkeypatch, in_memory
):
    """A speaker's ``sessions`` objects: one kept per session (beyond the first ``IN_MEMORY`` sessions, in the
    spill), and what the source export needs of them worked out exactly as from objects in memory."""
    monkeypatch.setattr(shape_module, "IN_MEMORY", in_memory)
    sessions = [{"id": i, "title": title} for i, title in ((1, "A"), (2, "B"), (3, "C"))]
    listed = {
        1: [{"id": 1, "title": "A", "n": 1}, {"id": 2, "title": "Bee", "length": 0.3}],
        2: [{"id": 1, "title": "A", "n": 1}, {"id": 2, "title": "Bee", "length": 0.3}],  # the same again
        3: [{"id": "1", "title": "A", "n": 1}],  # the id as text: the same object for the export
        4: [{"id": 2, "title": "Bee", "length": 0.30000000000000004}],  # another number: this speaker's own
        5: [{"id": 2, "length": 0.3, "title": "Bee"}],  # another order, the same members
        6: [{"id": 1, "title": "A", "n": 1.0}],  # 1.0 for 1: a type the members list gains, no object kept
        7: [{"id": 3, "title": "C"}],  # what session 3 gives back: nothing kept
    }
    speakers = [{"id": i, "name": f"S{i}", "sessions": objects} for i, objects in listed.items()]
    path = write_zip(tmp_path / "a.zip", kebab_event(sessions=sessions, speakers=speakers))
    with read_archive(path) as archive:
        out = normalise(archive)
    shape = out.shape["files"]["speakers"]
    assert out.problems.errors == []
    assert shape["inline"] == {
        "sessions": {"1": {"id": None, "title": "A", "n": 1}, "2": {"id": None, "title": "Bee", "length": 0.3}}
    }
    assert shape["inline_records"] == {
        "sessions": {"4": {"2": {"id": None, "title": "Bee", "length": 0.30000000000000004}}}
    }
    assert shape["members"]["sessions"] == {
        "id": ["int", "str"],
        "title": ["str"],
        "n": ["float", "int"],
        "length": ["float"],
    }
    # the speakers file alone: the first object of sessions 1, 2 and 3, beyond the first in_memory ones, went
    # to the spill (their numbers kept); the others are kept as their JSON text
    spill = BodySpill()
    file_shape = FileShape("speakers", spill)
    for speaker in speakers:
        file_shape.see(speaker, str(speaker["id"]))
    spilled = max(0, 3 - in_memory)
    kinds = [type(first) for first in file_shape.inline["sessions"].values()]
    assert len(spill) == spilled and kinds == [bytes] * (3 - spilled) + [int] * spilled
    assert dict(file_shape.first_objects("sessions")) == {"1": listed[1][0], "2": listed[1][1], "3": listed[7][0]}


def test_an_object_orjson_refuses_is_compared_as_an_object():
    """An integer beyond 64 bits: the first object is kept as is; an equal one adds nothing, another is the
    record's own."""
    big = 2**70
    file_shape = FileShape("speakers", BodySpill())
    for speaker_id, n in ((1, big), (2, big), (3, big + 1)):
        file_shape.see({"id": speaker_id, "sessions": [{"id": 7, "n": n}]}, str(speaker_id))
    assert file_shape.inline["sessions"] == {"7": {"id": 7, "n": big}}
    assert dict(file_shape.first_objects("sessions")) == {"7": {"id": 7, "n": big}}
    assert file_shape.inline_records == {"sessions": {"3": {"7": {"id": None, "n": big + 1}}}}


@pytest.mark.parametrize("what", ["bodies", "copy"])
def test_a_full_temporary_directory_is_named_with_what_was_being_written(tmp_path, monkeypatch, what):
    """/dev/full answers every write with ENOSPC, as a full ``TMPDIR`` does."""

    def full(prefix):
        return open("/dev/full", "w+b")  # noqa: SIM115 - returned open, as a scratch file

    monkeypatch.setattr(spill_module, "scratch_file", full)
    monkeypatch.setattr(private_copy, "scratch_file", full)
    with pytest.raises(OSError) as caught:
        if what == "bodies":
            spill = BodySpill()
            for _ in range(300):  # 300 bodies of 4 KiB: past the 1 MiB gathered before a write
                spill.add({"title": "x" * 4096}, {})
        else:
            archive = tmp_path / "a.zip"
            archive.write_bytes(b"PK" * 1000)
            private_copy.snapshot(archive)
    written = "the records' bodies" if what == "bodies" else "the archive's private copy"
    assert caught.value.errno == errno.ENOSPC
    assert str(caught.value) == (
        f"[Errno 28] No space left on device in the temporary directory {tempfile.gettempdir()} (TMPDIR)"
        f" while writing {written}"
    )
