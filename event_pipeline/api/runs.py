"""Submitting an uploaded archive's import to Dagster, and what a user has running.

The partition (the archive key) is added to the instance, then the
``import_archive`` job is submitted through the webserver's GraphQL API
(``dagster-graphql``'s client), exactly as a launch from the UI: the run is
queued in the instance's run queue and the daemon launches it under the
queue's limits (one run per archive key at a time, ``dagster.yaml``). The run
carries the user as a tag (:data:`USER_TAG`), which is what ties a task to
its owner.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import dagster as dg
from dagster_graphql import DagsterGraphQLClient, DagsterGraphQLClientError

from event_pipeline.api import config
from event_pipeline.api.errors import ApiError
from event_pipeline.assets.archive import import_run_config
from event_pipeline.assets.common import ARCHIVES_NAME, KEY_TAG
from event_pipeline.problems import first_line
from event_pipeline.sensors.common import IMPORT_JOB, SOURCE_TAG, USER_TAG

PARTITION_TAG = "dagster/partition"
UNFINISHED = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]
GRAPHQL_TIMEOUT = 60  # seconds for one GraphQL call to the webserver


def graphql_client() -> DagsterGraphQLClient:
    """A client for the webserver at :func:`event_pipeline.api.config.dagster_url`."""
    parts = urlsplit(config.dagster_url())
    return DagsterGraphQLClient(
        parts.hostname or "127.0.0.1",
        port_number=parts.port,
        use_https=parts.scheme == "https",
        timeout=GRAPHQL_TIMEOUT,
        path_prefix=parts.path.rstrip("/"),
    )


def submit(instance: dg.DagsterInstance, key: str, path: str, user: str) -> str:
    """Queue an import of ``path`` as ``key`` for ``user``; the run id. Raises :class:`ApiError` 503 when
    the webserver cannot take it (not up yet, or it refused the run)."""
    if not instance.has_dynamic_partition(ARCHIVES_NAME, key):
        instance.add_dynamic_partitions(ARCHIVES_NAME, [key])
    tags = {KEY_TAG: key, PARTITION_TAG: key, SOURCE_TAG: "api", USER_TAG: user}
    try:
        run_config = import_run_config(path).to_config_dict()  # the same typed config as every other import
        return graphql_client().submit_job_execution(IMPORT_JOB, run_config=run_config, tags=tags)
    except DagsterGraphQLClientError as exc:
        detail = first_line(exc) or type(exc).__name__
        raise ApiError(
            503,
            "the Dagster webserver did not take the import (if it is still starting, retry in a few seconds): "
            + detail,
        ) from None
    except Exception as exc:  # connection refused, timeout: the webserver is not reachable
        raise ApiError(
            503,
            f"the Dagster webserver is not reachable at {config.dagster_url()} (if it is still starting, retry in a "
            f"few seconds): {exc}",
        ) from None


def unfinished_runs(instance: dg.DagsterInstance, user: str) -> int:
    """How many of ``user``'s import runs are queued or running."""
    return instance.get_runs_count(dg.RunsFilter(job_name=IMPORT_JOB, tags={USER_TAG: user}, statuses=UNFINISHED))


def owned_run(instance: dg.DagsterInstance, run_id: str, user: str) -> dg.DagsterRun:
    """The import run ``run_id`` if ``user`` started it through the API; 404 otherwise (also for
    another user's run: whether it exists is not theirs to know)."""
    run = instance.get_run_by_id(run_id) if len(run_id) <= 64 else None
    if run is None or run.job_name != IMPORT_JOB or run.tags.get(USER_TAG) != user:
        raise ApiError(404, f"no task {run_id!r}")
    return run


def user_runs(instance: dg.DagsterInstance, user: str, limit: int, cursor: str | None) -> list[dg.RunRecord]:
    """``user``'s import runs, newest first, at most ``limit``, after the run id ``cursor``."""
    return list(
        instance.get_run_records(dg.RunsFilter(job_name=IMPORT_JOB, tags={USER_TAG: user}), limit=limit, cursor=cursor)
    )
