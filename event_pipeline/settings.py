"""Every setting of the project, one typed object read from the environment (``EVENT_PIPELINE_*``).

:class:`Settings` declares each variable once, with its type, default and meaning;
:func:`current` reads the environment at the moment it is called, so a variable
changed by a test (``monkeypatch.setenv``) or an operator is seen by the next call
(the object is rebuilt only when one of its variables, as named in the README,
changed). An empty variable counts as unset.

The README's settings table is generated from this class (:func:`markdown_table`,
``python -m event_pipeline.settings``); ``tests/test_settings.py`` checks it matches.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

from pydantic import AliasChoices, Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

PACKAGE_DIR = Path(__file__).resolve().parent
PROJECT_DIR = PACKAGE_DIR.parent
PREFIX = "EVENT_PIPELINE_"
DATABASE_URL_ENV = PREFIX + "DATABASE_URL"
GiB = 1 << 30
MiB = 1 << 20


class SettingsError(ValueError):
    """A variable holds a value its setting cannot take; the message names the variable and the value."""


class Settings(BaseSettings):
    """The environment as the project reads it. Field ``max_members`` is the variable ``EVENT_PIPELINE_MAX_MEMBERS``
    (except ``dagster_home``, Dagster's own ``DAGSTER_HOME``)."""

    model_config = SettingsConfigDict(env_prefix=PREFIX, env_ignore_empty=True, extra="ignore", frozen=True)

    # Where things live
    database_url: str | None = Field(
        None,
        repr=False,  # may carry a password
        description="target database: any SQLAlchemy URL for SQLite or PostgreSQL (`postgresql://` uses psycopg 3)",
        json_schema_extra={"shown_default": "`sqlite:///<data dir>/events.db`"},
    )
    data_dir: Path | None = Field(
        None,
        description="where the default database, media and Dagster home live",
        json_schema_extra={"shown_default": "`data/` in a checkout, else `$XDG_DATA_HOME/event-pipeline`"},
    )
    base_url: str = Field("http://localhost:8080", description="base of the event URL in the result")
    ui_url: str | None = Field(
        None,
        description="base URL of the Dagster UI, for the run link in mails",
        json_schema_extra={"shown_default": "`http://<EVENT_PIPELINE_UI_HOST>:<EVENT_PIPELINE_UI_PORT>`"},
    )
    dagster_home: Path | None = Field(
        None,
        validation_alias=AliasChoices("DAGSTER_HOME"),
        description="Dagster instance (created with this repo's `dagster.yaml`; a copy nobody edited follows the "
        "repo's on upgrade, an edited one is kept)",
        json_schema_extra={"shown_default": "`<data dir>/dagster_home`", "variable": "DAGSTER_HOME"},
    )
    # Intake
    drop_dir: Path = Field(Path("drop"), description="the folder the drop-folder sensor watches")
    drop_url: str | None = Field(None, description="`s3://bucket/prefix` the sensor watches instead of the folder")
    # 5 s: a new file needs two scans (seen, then unchanged), so a copy becomes a run in about 10 s (under 20 s).
    sensor_interval: int = Field(5, description="seconds between sensor ticks, at least 1 (read when the code loads)")
    reimport_cron: str = Field("0 3 * * *", description="cron schedule of the re-import of every known archive")
    # Archive limits (zip bombs, hostile JSON): see read/archive.py Limits
    max_members: int = Field(20_000, ge=0, description="members of an archive; ignored ones (`__MACOSX/`) count")
    max_member_bytes: int = Field(GiB, ge=0, description="uncompressed bytes of one member")
    max_total_bytes: int = Field(4 * GiB, ge=0, description="uncompressed bytes of all members")
    max_json_bytes: int = Field(256 * MiB, ge=0, description="bytes of one JSON data file")
    max_ratio: int = Field(200, ge=1, description="uncompressed/compressed ratio of a member over 1 MiB")
    max_json_depth: int = Field(
        64,
        ge=1,
        description='how deeply arrays and objects may nest in a data file, from its top level (`[{"a": [1]}]` '
        "is 3); at most 200, since deeper values break Python's parser, pickling and JSON encoder",
    )
    max_problems: int = Field(
        10_000, ge=0, description="errors, and warnings, kept as a list in `import_jobs`; all are counted by kind"
    )
    max_problems_listed: int = Field(
        50,
        ge=0,
        description="errors, and warnings, listed in a result line (CLI, Dagster metadata); with more, the result "
        "has `errors_total`, `error_kinds` and a `notice`",
    )
    # Publishing
    lock_timeout: float = Field(1800.0, gt=0, description="seconds an import waits for another import of its key")
    # Media
    media_url: str | None = Field(None, description="`s3://bucket/prefix` to store media in, instead of a folder")
    media_root: Path | None = Field(
        None, description="folder to store media in", json_schema_extra={"shown_default": "`<data dir>/media`"}
    )
    media_base_url: str | None = Field(None, description="public URL of the media folder or prefix")
    max_media_bytes: int = Field(
        4 * GiB, ge=0, description="bytes of the distinct media objects one import stores (archive files and fetched)"
    )
    media_concurrency: int = Field(8, description="media uploads at once (at least 1)")
    media_cleanup_seconds: float = Field(
        30.0, ge=0, description="how long a failed import keeps trying to remove the media it uploaded"
    )
    media_fetch_hosts: str = Field(
        "", description="hosts (`host` or `host:port`, comma or space separated) media URLs may be fetched from"
    )
    media_fetch_max_bytes: int = Field(100 * MiB, ge=0, description="bytes of one fetched media file")
    media_fetch_timeout: float = Field(30.0, gt=0, description="seconds for one media fetch, the whole transfer")
    # Notifications
    smtp_url: str | None = Field(
        None,
        repr=False,  # may carry a password
        description="`smtp[s]://[user:password@]host[:port]` (`?starttls=1`) to email results; unset: logged",
    )
    notify_to: str = Field("", description="comma-separated addresses notified of every import")
    notify_from: str | None = Field(
        None, description="sender of notifications", json_schema_extra={"shown_default": "`event-pipeline@<host>`"}
    )
    # Bulk imports
    celery_config: Path | None = Field(
        None,
        description="YAML the bulk job's Celery executor and its workers read",
        json_schema_extra={"shown_default": "`deploy/celery.yaml` of the checkout"},
    )
    celery_broker: str | None = Field(
        None,
        repr=False,  # may carry a password
        description="broker URL of the bulk job's Celery executor and workers; read by dagster-celery itself, as "
        "`{env: EVENT_PIPELINE_CELERY_BROKER}` in `deploy/celery.k8s.yaml`, so it never enters run config",
        json_schema_extra={"shown_default": "`deploy/celery.yaml`'s local RabbitMQ"},
    )
    io_dir: str | None = Field(
        None,
        description="folder (shared by all workers) for the bulk job's step outputs",
        json_schema_extra={"shown_default": "the instance's storage folder"},
    )
    # Where runs may read archives from (intake/roots.py), and the HTTP API's upload store
    archive_roots: str | None = Field(
        None,
        description="comma-separated folders, files or `s3://bucket/prefix` URLs an import run may read archives "
        "from (the command line excepted)",
        json_schema_extra={"shown_default": "the drop folder (or S3 drop prefix), the upload store, the example"},
    )
    upload_dir: Path | None = Field(
        None,
        description="where the HTTP API stores uploaded archives",
        json_schema_extra={"shown_default": "`<data dir>/uploads`"},
    )
    # The HTTP import API (api/) and `make serve`
    api_host: str = Field("127.0.0.1", description="where the HTTP API listens")
    api_port: int = Field(8000, ge=1, description="the HTTP API's port")
    ui_host: str = Field("127.0.0.1", description="where the Dagster webserver listens (`make serve`)")
    ui_port: int = Field(3000, ge=1, description="the Dagster webserver's port (`make serve`)")
    dagster_url: str | None = Field(
        None,
        description="the webserver's address as the API reaches it",
        json_schema_extra={"shown_default": "`http://127.0.0.1:<UI port>`"},
    )
    jwt_secret: str | None = Field(
        None,
        repr=False,  # a secret
        description="HS256 secret of the API's tokens",
        json_schema_extra={"shown_default": "`<data dir>/api/jwt-secret` (made by `make serve`)"},
    )
    api_max_upload_bytes: int = Field(GiB, ge=1, description="largest upload the API takes (413 beyond)")
    api_max_active: int = Field(
        5, ge=1, description="a user's imports at once, uploads and unfinished runs (429 beyond)"
    )
    token_hours: int = Field(24, ge=1, description="lifetime of a token `event-pipeline token` prints")
    # Tests only
    test_kill_at: str | None = Field(
        None, description="test hook: `<point>[:<n>]` kills the importing process at a named point (never set it)"
    )


_last: tuple[tuple[str | None, ...], Settings] | None = None  # (the values it was read from, the object)


def current() -> Settings:
    """The settings as the environment holds them now. Raises :class:`SettingsError` naming each bad variable.

    Reading the variables takes pydantic-settings about a millisecond, too slow for a per-file check
    (``test_kill_at`` at every media upload), so the object is kept while its variables are unchanged:
    a glance at ``os.environ`` (microseconds) tells, and any change is seen at the next call.
    """
    global _last
    seen = tuple(os.environ.get(name) for name in _variables())
    last = _last
    if last is not None and last[0] == seen:
        return last[1]
    try:
        built = Settings()
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            name = str(error["loc"][0]) if error["loc"] else "?"
            variable = "DAGSTER_HOME" if name == "dagster_home" else PREFIX + name.upper()
            problems.append(f"{variable}={os.environ.get(variable)!r}: {error['msg']}")
        raise SettingsError("invalid setting: " + "; ".join(problems)) from None
    _last = (seen, built)
    return built


@functools.cache
def _variables() -> tuple[str, ...]:
    return tuple(variable(name) for name in Settings.model_fields)


def variable(name: str) -> str:
    """The environment variable of field ``name``."""
    extra = Settings.model_fields[name].json_schema_extra
    return str(extra["variable"]) if isinstance(extra, dict) and "variable" in extra else PREFIX + name.upper()


def markdown_table() -> str:
    """The README's settings table: one row per field, variable, meaning, default."""
    rows = ["| variable | meaning | default |", "| --- | --- | --- |"]
    for name, field in Settings.model_fields.items():
        extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
        default = extra.get("shown_default") or (
            "unset" if field.default in (None, "") else f"`{_shown(field.default)}`"
        )
        rows.append(f"| `{variable(name)}` | {field.description} | {default} |")
    return "\n".join(rows) + "\n"


def _shown(value: object) -> str:
    if isinstance(value, int) and not isinstance(value, bool) and value >= MiB and value % MiB == 0:
        return f"{value >> 30} GiB" if value % GiB == 0 else f"{value >> 20} MiB"
    return str(value)


def data_dir(create: bool = True) -> Path:
    """``EVENT_PIPELINE_DATA_DIR``, else ``data/`` in a source checkout, else the user's data folder.

    Created if missing, unless ``create`` is false (``validate`` writes nothing anywhere).
    """
    configured = current().data_dir
    if configured:
        path = configured
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
    configured = explicit or current().database_url
    return configured or f"sqlite:///{data_dir(create) / 'events.db'}"


def base_url() -> str:
    """``EVENT_PIPELINE_BASE_URL`` without a trailing slash."""
    return current().base_url.rstrip("/")


def ui_url() -> str:
    """``EVENT_PIPELINE_UI_URL`` without a trailing slash, else the address the webserver listens on
    (``EVENT_PIPELINE_UI_HOST`` and ``EVENT_PIPELINE_UI_PORT``, as ``make serve`` and ``make dev`` start it)."""
    configured = current()
    return (configured.ui_url or f"http://{configured.ui_host}:{configured.ui_port}").rstrip("/")


def dagster_home() -> Path:
    """``DAGSTER_HOME``, else a project-local home that ``make dev`` uses too; its ``dagster.yaml`` kept
    up to date (see :func:`event_pipeline.instance_config.install_instance_config`)."""
    configured = current().dagster_home
    path = configured if configured else data_dir() / "dagster_home"
    path.mkdir(parents=True, exist_ok=True)
    from event_pipeline.instance_config import install_instance_config

    # The package's copy (the checkout's root dagster.yaml links to it), so an installed wheel has it too.
    install_instance_config(PACKAGE_DIR / "dagster.yaml", path / "dagster.yaml")
    return path


def example_archive() -> Path:
    """The small archive bundled with the package (``event-pipeline import`` with no path)."""
    return PACKAGE_DIR / "examples" / "example-event.zip"


if __name__ == "__main__":
    print(markdown_table(), end="")
