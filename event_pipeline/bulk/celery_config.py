"""The bulk job's Celery executor, configured from the YAML file its workers are started with.

``deploy/celery.yaml`` (or ``EVENT_PIPELINE_CELERY_CONFIG``) is read by both
the job and the workers, so they cannot disagree about the broker, and the
broker URL stays out of run config.
"""

from pathlib import Path
from typing import Any

import yaml

from event_pipeline import settings

CELERY_CONFIG_ENV = "EVENT_PIPELINE_CELERY_CONFIG"
DEFAULT_CELERY_CONFIG: dict[str, Any] = {
    "broker": "amqp://guest:guest@127.0.0.1:5672//",
    "backend": "rpc://",
    "config_source": {
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "broker_connection_retry_on_startup": True,
    },
}


def celery_config_path() -> Path | None:
    """``EVENT_PIPELINE_CELERY_CONFIG``, else ``deploy/celery.yaml`` of a checkout (or image), else none."""
    configured = settings.current().celery_config
    if configured:
        return configured
    default = settings.PROJECT_DIR / "deploy" / "celery.yaml"
    return default if default.is_file() else None


def celery_executor_config(path: Path | None = None) -> dict[str, Any]:
    """The ``execution: config:`` block of the shared YAML (what ``dagster-celery worker start -y`` reads)."""
    path = path or celery_config_path()
    if path is None:
        return dict(DEFAULT_CELERY_CONFIG)
    parsed = yaml.safe_load(path.read_text()) or {}
    return dict((parsed.get("execution") or {}).get("config") or {})
