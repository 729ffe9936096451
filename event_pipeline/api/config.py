"""The HTTP API's settings, from the environment (plain functions, read when used).

Kept here, apart from ``settings.py``, so the API's knobs live with the API.

| variable | meaning | default |
| --- | --- | --- |
| ``EVENT_PIPELINE_API_HOST`` / ``_API_PORT`` | where the API listens | ``127.0.0.1`` / 8000 |
| ``EVENT_PIPELINE_UI_HOST`` / ``_UI_PORT`` | where the Dagster webserver listens | ``127.0.0.1`` / 3000 |
| ``EVENT_PIPELINE_DAGSTER_URL`` | the webserver's address as the API reaches it | ``http://127.0.0.1:<UI port>`` |
| ``EVENT_PIPELINE_JWT_SECRET`` | HS256 secret of the tokens | ``<data dir>/api/jwt-secret`` (made by ``make serve``) |
| ``EVENT_PIPELINE_API_MAX_UPLOAD_BYTES`` | largest upload (413 beyond) | 1 GiB |
| ``EVENT_PIPELINE_API_MAX_ACTIVE`` | a user's imports at once, uploads and unfinished runs (429 beyond) | 5 |
| ``EVENT_PIPELINE_TOKEN_HOURS`` | lifetime of a token ``event-pipeline token`` prints | 24 |
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from event_pipeline import settings

SECRET_ENV = "EVENT_PIPELINE_JWT_SECRET"


def api_host() -> str:
    return settings.current().api_host


def api_port() -> int:
    return settings.current().api_port


def ui_host() -> str:
    return settings.current().ui_host


def ui_port() -> int:
    return settings.current().ui_port


def dagster_url() -> str:
    """The webserver's base URL for the API's GraphQL calls (loopback unless configured)."""
    return (settings.current().dagster_url or f"http://127.0.0.1:{ui_port()}").rstrip("/")


def max_upload_bytes() -> int:
    return settings.current().api_max_upload_bytes


def max_active() -> int:
    return settings.current().api_max_active


def token_hours() -> int:
    return settings.current().token_hours


def secret_file() -> Path:
    """Where ``make serve`` keeps a generated secret when ``EVENT_PIPELINE_JWT_SECRET`` is unset."""
    return settings.data_dir(create=False) / "api" / "jwt-secret"


def jwt_secret() -> str | None:
    """``EVENT_PIPELINE_JWT_SECRET``, else the generated secret file's content, else None."""
    configured = settings.current().jwt_secret
    if configured:
        return configured
    try:
        return secret_file().read_text().strip() or None
    except OSError:
        return None


def ensure_secret() -> tuple[str, Path | None]:
    """The secret, made (256 random bits, file mode 0600) on first start if none is configured.

    Returns it and the file it is in (None: it came from the environment).
    """
    existing = jwt_secret()
    if existing:
        return existing, None if settings.current().jwt_secret else secret_file()
    path = secret_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(32)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # never readable by others
    with os.fdopen(descriptor, "w") as out:
        out.write(value + "\n")
    return value, path
