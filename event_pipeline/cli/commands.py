"""The small commands: ``export``, ``db upgrade`` (the schema) and ``token`` (for the HTTP API)."""

from __future__ import annotations

import sys

from event_pipeline.cli.output import emit, failure
from event_pipeline.problems import Problem


def run_export(key: str | None, out: str, event_id: int | None, dialect: str, database_url: str | None) -> int:
    """``export``: one JSON line, SUCCESS with the zip's path, size and sha256, or FAILURE with why."""
    from event_pipeline.export.command import run

    exported, problems = run(key, out, event_id, dialect, database_url)
    if exported is None:
        return failure(problems, key)
    return emit({"state": "SUCCESS", "export": exported})


def run_db_upgrade(database_url: str | None) -> int:
    """``db upgrade``: the schema at the newest Alembic revision; prints the revisions before and after."""
    from event_pipeline import settings
    from event_pipeline.db import get_engine, url_problem
    from event_pipeline.model import migrate

    url = settings.database_url(database_url)
    problem = url_problem(url)
    if problem:
        return failure([Problem(None, None, "database_url", problem)])
    before, after = migrate.upgrade_schema(get_engine(url, create_schema=False))
    return emit({"state": "SUCCESS", "from_revision": before, "revision": after})


def run_token(email: str, hours: int | None) -> int:
    """Print a token for ``email`` (the bare token, for ``$(event-pipeline token ...)``); the secret is
    ``EVENT_PIPELINE_JWT_SECRET``, else the one ``make serve`` keeps in the data folder (made here if missing)."""
    from event_pipeline.api import config
    from event_pipeline.api.auth import make_token

    if "@" not in email or email != email.strip():
        return failure([Problem(None, None, "email", f"not an email address: {email!r}")])
    secret, made = config.ensure_secret()
    if made is not None:
        sys.stderr.write(f"signed with the secret in {made}\n")
    sys.stdout.write(make_token(email, secret, hours or config.token_hours()) + "\n")
    return 0
