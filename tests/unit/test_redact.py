"""Passwords never shown: every form of URL, DSN and message quoting them (pure functions)."""

from __future__ import annotations

import pytest

from event_pipeline.redact import mask


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("postgresql://u:pw@db:5432/events", "postgresql://u:***@db:5432/events"),
        ("postgresql+psycopg://u:p@ss/w@rd@db/events", "postgresql+psycopg://u:***@db/events"),
        ("postgresql://u:@db/events", "postgresql://u:***@db/events"),
        (
            "postgresql://u@db/events?password=pw&sslmode=require",
            "postgresql://u@db/events?password=***&sslmode=require",
        ),
        ("postgresql:///events?host=db&password=pw", "postgresql:///events?host=db&password=***"),
        (
            "postgresql:///events?host=/run/pg&user=u&PASSWORD=pw",
            "postgresql:///events?host=/run/pg&user=u&PASSWORD=***",
        ),
        ("host=db port=5432 password=pw dbname=events", "host=db port=5432 password=*** dbname=events"),
        ("host=db password = 'p w\\'x' dbname=events", "host=db password = *** dbname=events"),
        ("host=db sslpassword=pw", "host=db sslpassword=***"),
        ("smtps://mailer:pw@mail.example.org:465", "smtps://mailer:***@mail.example.org:465"),
        (
            "cannot connect to postgresql://u:pw@db/x or postgresql://v@db/y?password=pw2",
            "cannot connect to postgresql://u:***@db/x or postgresql://v@db/y?password=***",
        ),
        ("sqlite:////var/lib/events.db", "sqlite:////var/lib/events.db"),
        (
            "postgresql://u@db:5432/events?options=-csearch_path%3Dx",
            "postgresql://u@db:5432/events?options=-csearch_path%3Dx",
        ),
        ("smtp://127.0.0.1:25", "smtp://127.0.0.1:25"),
        ("the user's password_hint=abc", "the user's password_hint=abc"),
        (None, ""),
    ],
)
def test_mask_hides_every_form_of_password(text, masked):
    from event_pipeline import notify

    assert mask(text) == masked
    assert notify.mask is mask  # one function, used for the SMTP URL too
