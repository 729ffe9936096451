"""Notifications over a real SMTP server on loopback (aiosmtpd); the password never shows."""

from __future__ import annotations

import logging

import pytest
from processes import free_port, smtp_server

from event_pipeline import notify

# aiosmtpd warns that the test server takes a login without TLS: on loopback, on purpose.
pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
PASSWORD = "s3cret-Pass"
JOB = {
    "key": "fossasia16",
    "run_id": "r-1",
    "archive_path": "/drop/fossasia16.zip",
    "archive_sha256": "ab" * 32,
    "result": {"event_name": "FOSSASIA Summit 2016", "id": 7, "url": "http://localhost:8080/events/abc"},
    "counts": {"events": 1, "sessions": 491},
    "diff": {"created": 600, "updated": 0, "deleted": 0, "unchanged": 0},
    "warnings": [{"file": "speakers", "record_id": "3", "field": "photo", "message": "media not in archive"}],
}


def test_mask_hides_only_the_password():
    assert notify.mask(f"smtps://mailer:{PASSWORD}@mail.example.org:465") == "smtps://mailer:***@mail.example.org:465"
    assert notify.mask("smtp://127.0.0.1:25") == "smtp://127.0.0.1:25"
    assert notify.mask(None) == ""


def test_messages_follow_the_reference_server(monkeypatch):
    monkeypatch.delenv("EVENT_PIPELINE_BASE_URL", raising=False)
    monkeypatch.setenv("EVENT_PIPELINE_UI_URL", "https://dagster.example.org/")
    unset = notify.success_message(JOB)
    assert "View the event" not in unset.body  # the default base URL serves nothing
    assert "View the run: https://dagster.example.org/runs/r-1" in unset.body
    monkeypatch.setenv("EVENT_PIPELINE_BASE_URL", "http://localhost:8080")
    done = notify.success_message(JOB)
    assert done.subject == "Import of event FOSSASIA Summit 2016 complete"
    assert "View the event: http://localhost:8080/events/abc" in done.body and "491 sessions" in done.body
    assert "speakers, id 3, photo: media not in archive" in done.body
    errors = [
        {"file": "sessions", "record_id": str(i), "field": "track", "message": "unknown track"} for i in range(60)
    ]
    failed = notify.failure_message({**JOB, "errors": errors}, "FOSSASIA Summit 2016")
    assert failed.subject == "Import of event FOSSASIA Summit 2016 failed"
    assert "The following errors occurred:" in failed.body
    assert "sessions, id 49, track: unknown track" in failed.body and "... and 10 more" in failed.body
    unnamed = notify.failure_message({"key": "k", "run_id": "r", "error": "archive not found: /x.zip"})
    assert unnamed.subject == "Import of event k failed" and "archive not found: /x.zip" in unnamed.body


def test_email_with_login_and_no_password_in_logs(monkeypatch, caplog):
    caplog.set_level(logging.INFO)
    with smtp_server(auth=True) as (mailbox, port):
        monkeypatch.setenv("EVENT_PIPELINE_SMTP_URL", f"smtp://notifier:{PASSWORD}@127.0.0.1:{port}")
        monkeypatch.setenv("EVENT_PIPELINE_NOTIFY_TO", "a@example.org,b@example.org")
        monkeypatch.setenv("EVENT_PIPELINE_NOTIFY_FROM", "imports@example.org")
        assert notify.send(notify.success_message(JOB)) is True
    [message] = mailbox.messages
    assert mailbox.logins[0] == ("notifier", PASSWORD)
    assert message["From"] == "imports@example.org" and message["To"] == "a@example.org, b@example.org"
    assert message["Subject"] == "Import of event FOSSASIA Summit 2016 complete"
    assert "has been imported successfully" in message.get_content()
    assert "via smtp://notifier:***@127.0.0.1" in caplog.text
    assert PASSWORD not in caplog.text


def test_unreachable_server_and_no_config_fall_back_to_a_log_line(monkeypatch, caplog):
    caplog.set_level(logging.INFO)
    monkeypatch.delenv("EVENT_PIPELINE_SMTP_URL", raising=False)
    monkeypatch.setenv("EVENT_PIPELINE_NOTIFY_TO", "a@example.org")
    assert notify.send(notify.failure_message({**JOB, "error": "boom"})) is False
    assert "Import of event fossasia16 failed" in caplog.text and "boom" in caplog.text
    caplog.clear()
    monkeypatch.setenv("EVENT_PIPELINE_SMTP_URL", f"smtp://u:{PASSWORD}@127.0.0.1:{free_port()}")
    assert notify.send(notify.failure_message({**JOB, "error": "boom"})) is False
    assert "could not email" in caplog.text and PASSWORD not in caplog.text
