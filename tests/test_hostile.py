"""Hostile archives: bombs, odd members, huge or deep JSON. A clean FAILURE, bounded memory."""

from __future__ import annotations

import pytest
from archives import kebab_event, write_zip
from conftest import import_archive, scalar


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_limit_error_reaches_the_user_and_writes_nothing(db_url, tmp_path, monkeypatch):
    monkeypatch.setenv("EVENT_PIPELINE_MAX_JSON_BYTES", "100")
    code, result = import_archive(write_zip(tmp_path / "a.zip", kebab_event()), db_url)
    assert code == 1
    assert "EVENT_PIPELINE_MAX_JSON_BYTES" in result["error"]
    assert scalar(db_url, "select count(*) from events") == 0
