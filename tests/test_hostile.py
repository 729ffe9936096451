"""Hostile archives: bombs, odd members, huge or deep JSON. A clean FAILURE, bounded memory."""

from __future__ import annotations

import json
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


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_limit_error_reaches_the_user_and_writes_nothing(db_url, tmp_path, monkeypatch):
    monkeypatch.setenv("EVENT_PIPELINE_MAX_JSON_BYTES", "100")
    code, result = import_archive(write_zip(tmp_path / "a.zip", kebab_event()), db_url)
    assert code == 1
    assert "EVENT_PIPELINE_MAX_JSON_BYTES" in result["error"]
    assert scalar(db_url, "select count(*) from events") == 0
