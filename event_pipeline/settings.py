"""Where things live, from the environment, with defaults that work on a fresh machine."""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
PROJECT_DIR = PACKAGE_DIR.parent


def data_dir() -> Path:
    """``EVENT_PIPELINE_DATA_DIR``, else ``data/`` in a source checkout, else the user's data folder."""
    configured = os.environ.get("EVENT_PIPELINE_DATA_DIR")
    if configured:
        path = Path(configured)
    elif (PROJECT_DIR / "pyproject.toml").exists():
        path = PROJECT_DIR / "data"
    else:
        path = Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local" / "share")) / "event-pipeline"
    path.mkdir(parents=True, exist_ok=True)
    return path


def database_url(explicit: str | None = None) -> str:
    """``--database-url``, else ``EVENT_PIPELINE_DATABASE_URL``, else SQLite in the data dir."""
    return explicit or os.environ.get("EVENT_PIPELINE_DATABASE_URL") or f"sqlite:///{data_dir() / 'events.db'}"


def base_url() -> str:
    return os.environ.get("EVENT_PIPELINE_BASE_URL", "http://localhost:8080").rstrip("/")


def dagster_home() -> Path:
    """``DAGSTER_HOME``, else a project-local home that ``make dev`` uses too."""
    configured = os.environ.get("DAGSTER_HOME")
    path = Path(configured) if configured else data_dir() / "dagster_home"
    path.mkdir(parents=True, exist_ok=True)
    config = path / "dagster.yaml"
    template = PROJECT_DIR / "dagster.yaml"
    if not config.exists() and template.exists():
        config.write_text(template.read_text())
    return path


def example_archive() -> Path:
    return PACKAGE_DIR / "examples" / "example-event.zip"
