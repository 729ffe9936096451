"""Hostile archives: bombs, odd members, huge or deep JSON. A clean FAILURE, bounded memory."""

from __future__ import annotations

import json
import resource
import stat
import zipfile

import pytest
from archives import kebab_event, write_zip
from conftest import import_archive, scalar

from event_pipeline.read.archive import read_archive
from event_pipeline.read.limits import Limits
from event_pipeline.read.normalise import normalise


def _zip_with(path, members):
    """members: name -> (bytes or a callable writing into the open member)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in {k: json.dumps(v).encode() for k, v in kebab_event().items()}.items():
            zf.writestr(name, data)
        for name, content in members.items():
            if callable(content):
                with zf.open(name, "w", force_zip64=True) as fh:
                    content(fh)
            else:
                zf.writestr(name, content)
    return path


def _errors(path, **limits):
    """Every error of reading and normalising (JSON is parsed by the normaliser, on demand)."""
    archive = read_archive(path, Limits(**limits) if limits else Limits())
    if archive.members:
        normalise(archive)
    return " | ".join(str(e) for e in archive.problems.errors)


def test_member_inflating_to_a_gibibyte_is_refused_without_inflating_it(tmp_path):
    zeros = b"\0" * (1 << 20)

    def gigabyte(fh):
        for _ in range(1024):
            fh.write(zeros)

    path = _zip_with(tmp_path / "bomb.zip", {"images/bomb.bin": gigabyte})
    assert path.stat().st_size < 5 << 20
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    message = _errors(path)
    assert "images/bomb.bin: compression ratio above 200" in message and "EVENT_PIPELINE_MAX_RATIO" in message
    message = _errors(path, max_ratio=10**9, max_member_bytes=512 << 20)
    assert "images/bomb.bin: member inflates to 1073741824 bytes" in message
    assert "EVENT_PIPELINE_MAX_MEMBER_BYTES" in message
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 200 * 1024  # KiB: nothing inflated


def test_high_compression_ratio_is_refused(tmp_path):
    path = _zip_with(tmp_path / "ratio.zip", {"sessions_extra.json": b" " * (20 << 20)})
    assert "compression ratio above 200" in _errors(path)
    assert "EVENT_PIPELINE_MAX_RATIO" in _errors(path)


def test_too_many_members(tmp_path):
    path = tmp_path / "many.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("event", json.dumps(kebab_event()["event"]))
        for i in range(100_000):
            zf.writestr(f"images/{i}", b"")
    assert "100001 members" in _errors(path) and "EVENT_PIPELINE_MAX_MEMBERS" in _errors(path)


def test_symlink_and_absolute_members(tmp_path):
    path = _zip_with(tmp_path / "links.zip", {})
    with zipfile.ZipFile(path, "a") as zf:
        link = zipfile.ZipInfo("images/link")
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(link, "/etc/passwd")
        zf.writestr("/abs/x", b"x")
    message = _errors(path)
    assert "images/link: member is a symbolic link" in message
    assert "/abs/x: member path escapes the archive" in message


def test_deeply_nested_json(tmp_path):
    path = write_zip(tmp_path / "deep.zip", {**kebab_event(), "tracks": "[" * 100_000 + "]" * 100_000})
    assert "tracks: invalid JSON: nested too deeply" in _errors(path)


def test_json_file_over_the_limit(tmp_path, monkeypatch):
    big = {**kebab_event(), "speakers": [{"id": i, "name": "x" * 1000} for i in range(60_000)]}  # ~62 MB
    path = write_zip(tmp_path / "big.zip", big)
    assert "JSON file of" in _errors(path, max_json_bytes=50 << 20)
    assert _errors(path) == ""  # within the default limit: parsed


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_limit_error_reaches_the_user_and_writes_nothing(db_url, tmp_path, monkeypatch):
    monkeypatch.setenv("EVENT_PIPELINE_MAX_JSON_BYTES", "100")
    code, result = import_archive(write_zip(tmp_path / "a.zip", kebab_event()), db_url)
    assert code == 1
    assert "EVENT_PIPELINE_MAX_JSON_BYTES" in result["error"]
    assert scalar(db_url, "select count(*) from events") == 0


def test_limits_from_environment(monkeypatch):
    monkeypatch.setenv("EVENT_PIPELINE_MAX_MEMBERS", "5")
    assert Limits.from_env().max_members == 5
