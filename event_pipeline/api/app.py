"""The import API (FastAPI): the reference server's ``/v1/events/import/json`` and ``/v1/tasks/<id>``.

A thin layer over Dagster: an upload becomes a run of ``import_archive``
that the daemon launches and the UI shows like any other; a task is that
run; its result is the run's ``import_jobs`` row. Run it with
``make serve`` (see :mod:`event_pipeline.api.serve`), or on its own::

    uvicorn --factory event_pipeline.api.app:create_app

Interactive documentation is at ``/docs`` (the OpenAPI schema at ``/openapi.json``).
"""

from __future__ import annotations

import collections
import contextlib
import os
from collections.abc import AsyncIterator
from typing import Annotated, Any

import dagster as dg
from fastapi import Depends, FastAPI, Query, Request
from starlette.concurrency import run_in_threadpool

from event_pipeline import settings
from event_pipeline.api import config, errors, runs, tasks, uploads
from event_pipeline.api.auth import User, current_user
from event_pipeline.api.errors import ApiError
from event_pipeline.intake import keys, roots
from event_pipeline.problems import Problem
from event_pipeline.publish import import_log

UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {"type": "string", "format": "binary", "description": "the export archive (zip)"},
                        "key": {"type": "string", "description": "archive key (default: the file name without .zip)"},
                    },
                }
            }
        },
    }
}


class State:
    """What the app keeps: the Dagster instance, the events database, uploads in progress per user."""

    def __init__(self) -> None:
        os.environ["DAGSTER_HOME"] = str(settings.dagster_home())
        self.instance = dg.DagsterInstance.get()
        self.database_url = settings.database_url()
        self.uploading: collections.Counter[str] = collections.Counter()

    def engine(self):
        from event_pipeline.db import get_engine

        return get_engine(self.database_url)


def _state(request: Request) -> State:
    return request.app.state.api


def _key(upload: uploads.Upload) -> tuple[str, str | None]:
    """The archive key (the ``key`` field, else the file name without ``.zip``) and why it is refused."""
    key = upload.key if upload.key is not None else keys.key_from_name(upload.filename or "")
    return key, keys.key_error(key)


async def _reserve(state: State, user: User) -> None:
    """Count this upload against the user's limit, or refuse it (429) when they have enough going on."""
    state.uploading[user.id] += 1  # first, with no await before it: concurrent requests see each other
    active = state.uploading[user.id] + await run_in_threadpool(runs.unfinished_runs, state.instance, user.id)
    if active > config.max_active():
        _release(state, user)
        raise ApiError(
            429,
            f"too many imports at once: {active - 1} of yours are uploading, queued or running, "
            f"at most {config.max_active()} (EVENT_PIPELINE_API_MAX_ACTIVE); retry when one has ended",
            headers={"Retry-After": "10"},
        )


def _release(state: State, user: User) -> None:
    state.uploading[user.id] -= 1
    if state.uploading[user.id] <= 0:
        del state.uploading[user.id]


def create_app() -> FastAPI:
    """The API application (a factory: the Dagster instance is opened when the app starts)."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.api = State()
        try:
            yield
        finally:
            app.state.api.instance.dispose()

    app = FastAPI(
        title="event-pipeline import API",
        version="1",
        description="Upload an Open Event export archive; poll its task until SUCCESS or FAILURE.",
        lifespan=lifespan,
    )
    errors.install(app)

    @app.post(
        "/v1/events/import/json",
        openapi_extra=UPLOAD_BODY,
        summary="Import an archive (or validate it: ?dry_run=true)",
        responses={
            200: {"description": '`{"task_url": "/v1/tasks/<id>", "task_id": "<id>"}`, or the validation result'},
            400: {"description": "not a zip, no file, invalid key"},
            401: {"description": "missing, expired or badly signed token"},
            413: {"description": "larger than EVENT_PIPELINE_API_MAX_UPLOAD_BYTES"},
            429: {"description": "more than EVENT_PIPELINE_API_MAX_ACTIVE imports of yours at once"},
        },
    )
    async def import_json(
        request: Request,
        user: Annotated[User, Depends(current_user)],
        dry_run: Annotated[bool, Query(description="validate only; the full result, synchronously")] = False,
    ) -> dict[str, Any]:
        state = _state(request)
        await _reserve(state, user)
        try:
            store = roots.upload_dir(create=True)
            upload = await uploads.receive(request, store, config.max_upload_bytes())
            try:
                key, refused = _key(upload)
                if dry_run:
                    from event_pipeline.cli import validation

                    return await run_in_threadpool(validation, str(upload.path), key, state.database_url)
                if refused:
                    problem = Problem(None, None, "key", refused)
                    raise ApiError(400, refused, errors=[problem.as_dict()])
                path = str(upload.keep())
            finally:
                if dry_run or upload.path.name.startswith(".upload-"):
                    upload.discard()  # a dry run keeps nothing; a refused upload neither
            outside = roots.refusal(path)
            if outside:  # the operator's roots leave out the upload store: the run would refuse it
                raise ApiError(503, f"the server is misconfigured: {outside}")
            run_id = await run_in_threadpool(runs.submit, state.instance, key, path, user.id)
        finally:
            _release(state, user)
        return {"task_url": tasks.task_url(run_id), "task_id": run_id}

    @app.get("/v1/tasks/{task_id}", summary="A task's state, then its result")
    def get_task(task_id: str, request: Request, user: Annotated[User, Depends(current_user)]) -> dict[str, Any]:
        state = _state(request)
        run = runs.owned_run(state.instance, task_id, user.id)
        return tasks.task(state.instance, state.engine(), run)

    @app.get("/v1/import-jobs", summary="Your imports, newest first")
    def list_imports(
        request: Request,
        user: Annotated[User, Depends(current_user)],
        limit: Annotated[int, Query(ge=1, le=100)] = 20,
        cursor: Annotated[str | None, Query(description="the last task_id of the previous page")] = None,
    ) -> dict[str, Any]:
        state = _state(request)
        if cursor is not None:
            runs.owned_run(state.instance, cursor, user.id)  # 404 for a cursor that is not yours
        records = runs.user_runs(state.instance, user.id, limit, cursor)
        engine = state.engine()
        items = [tasks.summary(r, import_log.get_job(engine, r.dagster_run.run_id)) for r in records]
        after = items[-1]["task_id"] if len(items) == limit else None
        return {"items": items, "next": f"/v1/import-jobs?limit={limit}&cursor={after}" if after else None}

    return app
