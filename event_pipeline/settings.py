"""Where things live, from the environment, with defaults that work on a fresh machine."""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
PROJECT_DIR = PACKAGE_DIR.parent


def data_dir(create: bool = True) -> Path:
    """``EVENT_PIPELINE_DATA_DIR``, else ``data/`` in a source checkout, else the user's data folder.

    Created if missing, unless ``create`` is false (``validate`` writes nothing anywhere).
    """
    configured = os.environ.get("EVENT_PIPELINE_DATA_DIR")
    if configured:
        path = Path(configured)
    elif (PROJECT_DIR / "pyproject.toml").exists():
        path = PROJECT_DIR / "data"
    else:
        path = Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local" / "share")) / "event-pipeline"
    if create:
        path.mkdir(parents=True, exist_ok=True)
    return path


def database_url(explicit: str | None = None, create: bool = True) -> str:
    """``--database-url``, else ``EVENT_PIPELINE_DATABASE_URL``, else SQLite in the data dir
    (created if missing, unless ``create`` is false)."""
    configured = explicit or os.environ.get("EVENT_PIPELINE_DATABASE_URL")
    return configured or f"sqlite:///{data_dir(create) / 'events.db'}"


def base_url() -> str:
    return os.environ.get("EVENT_PIPELINE_BASE_URL", "http://localhost:8080").rstrip("/")


def dagster_home() -> Path:
    """``DAGSTER_HOME``, else a project-local home that ``make dev`` uses too; its ``dagster.yaml`` kept
    up to date (see :func:`install_instance_config`)."""
    configured = os.environ.get("DAGSTER_HOME")
    path = Path(configured) if configured else data_dir() / "dagster_home"
    path.mkdir(parents=True, exist_ok=True)
    template = PROJECT_DIR / "dagster.yaml"
    if template.exists():
        install_instance_config(template, path / "dagster.yaml")
    return path


def install_instance_config(template: Path, config: Path) -> None:
    """Copy the project's ``dagster.yaml`` into the home, and again when the project's changes.

    A copy this function wrote and nobody edited since is replaced by the new
    template (an upgrade brings its run queue settings along); one an operator
    edited is left alone, with a warning, since their settings win. What was
    written last is remembered by its hash next to it.
    """
    wanted = template.read_bytes()
    stamp = config.with_name(".dagster.yaml.written-sha256")
    if config.exists():
        current = config.read_bytes()
        if current == wanted:
            return
        written = stamp.read_text().strip() if stamp.exists() else None
        if written != hashlib.sha256(current).hexdigest():
            logging.getLogger("event_pipeline").warning(
                "%s differs from the project's %s and was edited; leaving it as it is", config, template
            )
            return
    config.write_bytes(wanted)
    stamp.write_text(hashlib.sha256(wanted).hexdigest() + "\n")


def example_archive() -> Path:
    return PACKAGE_DIR / "examples" / "example-event.zip"
