"""The HTTP import API end to end: ``make serve``'s real webserver, daemon and API, a real client (httpx).

One stack per database kind for the module (see api_stack.py). Expected
values come from the archives' JSON (expectations.py) and from what
``event-pipeline import`` prints for the same archive.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import threading
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor

import dagster as dg
import httpx
import jwt
import pytest
from api_stack import MAX_UPLOAD, SECRET, Stack, api_stack
from archives import kebab_event, write_zip
from conftest import BROKEN_SAMPLE, PG_ADMIN, REFERENCE_ORDER, REPO, import_archive, rows, sample, scalar
from conftest import throwaway_database as database
from expectations import expected
from processes import BIN

from event_pipeline.api.auth import make_token

STEPS = ["QUEUED", "STARTING", "STARTED", "Reading the archive"]
STEPS += [f"Importing {name} ({i}/9)" for i, name in enumerate(REFERENCE_ORDER, 1)]
STEPS += ["Storing media", "Writing the event", "Checking the imported event", "SUCCESS"]


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def stack(request, tmp_path_factory):
    root = tmp_path_factory.mktemp(f"api-{request.param}")
    if request.param == "sqlite":
        with api_stack(root, f"sqlite:///{root / 'events.db'}") as running:
            yield running
        return
    with database("ep_api") as name, api_stack(root, f"{PG_ADMIN.rsplit('/', 1)[0]}/{name}") as running:
        yield running


def _without_ids(result: dict) -> dict:
    """A result without what differs between two databases: ids, the URL, where media are stored."""
    out = {k: v for k, v in result.items() if k not in ("task_id", "task_url")}
    return {**out, "result": {**out["result"], "id": None, "url": None}, "media": {**out["media"], "storage": None}}


def test_upload_and_poll_to_the_clis_result_then_again_in_place(stack: Stack, tmp_path):
    path, email = sample("FOSSASIASummit2014"), "organiser@example.org"
    want = expected(path)
    with stack.client(email) as client:
        accepted = stack.upload(client, path)
        assert accepted.status_code == 200, accepted.text
        task_id = accepted.json()["task_id"]
        assert accepted.json() == {"task_url": f"/v1/tasks/{task_id}", "task_id": task_id}
        body = stack.wait_task(client, task_id)
        assert body["state"] == "SUCCESS", body
        [(event_id, identifier)] = rows(
            stack.db_url, "select id, identifier from events where import_key = :k", k=path.stem
        )
        url = f"http://localhost:8080/events/{identifier}"
        assert body["result"] == {"event_name": want["event_name"], "id": event_id, "url": url}
        assert body["counts"] == want["counts"]
        assert body["diff"]["created"] == sum(n for t, n in want["counts"].items() if t != "session_speakers")
        assert body["diff"]["links"]["added"] == want["counts"]["session_speakers"]
        code, printed = import_archive(path, f"sqlite:///{tmp_path / 'cli.db'}")  # the same archive, by the CLI
        assert code == 0 and _without_ids(body) == _without_ids(printed)

        # A Dagster run like any other, tagged with its user; the result emailed to the token's address.
        stack.wait(lambda: stack.run(task_id).status == dg.DagsterRunStatus.SUCCESS, "the run to end")
        tags = stack.run(task_id).tags
        assert (tags["event_pipeline/user"], tags["event_pipeline/source"], tags["dagster/partition"]) == (
            email,
            "api",
            path.stem,
        )
        subject = f"Import of event {want['event_name']} complete"
        mail = stack.wait(lambda: [m for m in stack.mailbox.messages if m["To"] == email], "the email to the user")
        assert [m["Subject"] for m in mail] == [subject]
        # The run's page on the webserver `make serve` started; no event link, as EVENT_PIPELINE_BASE_URL is unset.
        body_text = mail[0].get_content()
        assert f"View the run: http://127.0.0.1:{stack.ui_port}/runs/{task_id}" in body_text and url not in body_text
        stack.wait(lambda: [m for m in stack.mailbox.messages if m["To"] == "ops@example.org"], "the ops email")

        # The same bytes again: one event, updated in place (here: unchanged), and one stored file.
        again = stack.wait_task(client, stack.upload(client, path).json()["task_id"])
        assert again["state"] == "SUCCESS" and again["result"]["id"] == event_id and again["unchanged_archive"]
        assert scalar(stack.db_url, "select count(*) from events where import_key = :k", k=path.stem) == 1
        stored = stack.uploads / f"{hashlib.sha256(path.read_bytes()).hexdigest()}.zip"
        assert stored.read_bytes() == path.read_bytes() and stack.leftovers() == []
        # The uploader hears of the unchanged re-import too; the configured recipients do not.
        stack.wait(lambda: len([m for m in stack.mailbox.messages if m["To"] == email]) == 2, "the second email")
        to = sorted(m["To"] for m in stack.mailbox.messages if m["Subject"] == subject)
        assert to == sorted([email, email, "ops@example.org"])

        listed = client.get("/v1/import-jobs", params={"limit": 1}).json()
        assert [i["task_id"] for i in listed["items"]] == [again["task_id"]]  # newest first
        second = client.get(listed["next"]).json()["items"][0]
        assert (second["task_id"], second["state"], second["event_id"], second["key"]) == (
            task_id,
            "SUCCESS",
            event_id,
            path.stem,
        )


def test_broken_archive_fails_naming_file_and_position(stack: Stack):
    path, email = sample(BROKEN_SAMPLE), "broken@example.org"
    with zipfile.ZipFile(path) as zf:
        [member] = [n for n in zf.namelist() if n.split("/")[-1] in ("session_types", "session_types.json")]
        try:
            json.loads(zf.read(member))
        except json.JSONDecodeError as exc:
            position = f"line {exc.lineno} column {exc.colno}"
    with stack.client(email) as client:
        body = stack.wait_task(client, stack.upload(client, path).json()["task_id"])
    assert body["state"] == "FAILURE"
    assert body["result"]["error"] == body["error"]
    assert body["error"].startswith("session_types: invalid JSON") and position in body["error"]
    [stored] = rows(stack.db_url, "select errors from import_jobs where run_id = :r", r=body["task_id"])
    kept = stored[0] if isinstance(stored[0], list) else json.loads(stored[0])
    assert body["errors"] == kept and body["errors_total"] == len(kept) >= 1
    mail = stack.wait(lambda: [m for m in stack.mailbox.messages if m["To"] == email], "the failure email")
    assert mail[0]["Subject"] == f"Import of event {BROKEN_SAMPLE} failed" and position in mail[0].get_content()


def test_progress_is_told_step_by_step(stack: Stack, tmp_path):
    path = tmp_path / "large.zip"
    subprocess.run([sys.executable, str(REPO / "scripts" / "generate_archive.py"), "3000", str(path)], check=True)
    with stack.client("large@example.org") as client:
        task_id = stack.upload(client, path).json()["task_id"]
        seen: list[str] = []
        deadline = time.monotonic() + 300
        while (not seen or seen[-1] not in ("SUCCESS", "FAILURE")) and time.monotonic() < deadline:
            state = client.get(f"/v1/tasks/{task_id}").json()["state"]
            if not seen or seen[-1] != state:
                seen.append(state)
            time.sleep(0.05)
    assert seen[-1] == "SUCCESS", seen
    assert all(state in STEPS for state in seen), seen
    assert [STEPS.index(s) for s in seen] == sorted(STEPS.index(s) for s in seen), f"out of order: {seen}"
    assert any(s.startswith("Importing ") for s in seen), seen


def test_tokens_tasks_and_errors_answer_in_json(stack: Stack, tmp_path):
    archive = write_zip(tmp_path / "authconf.zip", kebab_event())
    with stack.client("owner@example.org") as owner:
        task_id = stack.upload(owner, archive).json()["task_id"]
        assert owner.get(f"/v1/tasks/{task_id}").status_code == 200
    other = f"Bearer {make_token('other@example.org', SECRET, 1)}"
    assert stack_get(stack, f"/v1/tasks/{task_id}", other).status_code == 404  # another user's task
    assert stack_get(stack, "/v1/tasks/no-such-task", other).json() == {"message": "no task 'no-such-task'"}
    assert stack_get(stack, "/v1/import-jobs", other).json() == {"items": [], "next": None}
    bad = {
        "missing": None,
        "scheme": f"Basic {make_token('x@example.org', SECRET, 1)}",
        "expired": f"JWT {make_token('x@example.org', SECRET, 1, now=time.time() - 7200)}",
        "signature": f"JWT {make_token('x@example.org', 'another-secret-of-32-bytes-at-least', 1)}",
        "no expiry": f"JWT {jwt.encode({'email': 'x@example.org'}, SECRET, algorithm='HS256')}",
    }
    for why, header in bad.items():
        response = stack_get(stack, f"/v1/tasks/{task_id}", header)
        assert response.status_code == 401, why
        assert response.headers["content-type"] == "application/json" and response.json()["message"], why
    cli = subprocess.run(
        [str(BIN / "event-pipeline"), "token", "--email", "cli@example.org"], env=stack.env, capture_output=True
    )
    assert stack_get(stack, "/v1/import-jobs", f"JWT {cli.stdout.decode().strip()}").status_code == 200
    assert stack_get(stack, "/nowhere", None).json() == {"message": "Not Found"}
    assert "swagger" in stack_get(stack, "/docs", None).text.lower()


def stack_get(stack: Stack, url: str, authorization: str | None) -> httpx.Response:
    headers = {"Authorization": authorization} if authorization else {}
    return httpx.get(stack.api + url, headers=headers, timeout=60)


def _slow_body(data: bytes, name: str, gate: threading.Event, boundary: str = "api-test-boundary"):
    yield (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
        "Content-Type: application/zip\r\n\r\n"
    ).encode()
    yield data[:1000]
    gate.wait(120)  # the upload stays open, counted against its user, until the test lets it go
    yield data[1000:]
    yield f"\r\n--{boundary}--\r\n".encode()


def test_size_count_and_shape_limits(stack: Stack, tmp_path):
    big = tmp_path / "big.zip"
    big.write_bytes(b"PK\x03\x04" + b"\0" * MAX_UPLOAD)
    archive = write_zip(tmp_path / "limits.zip", kebab_event())
    with stack.client("limits@example.org") as client:
        too_big = stack.upload(client, big)
        assert too_big.status_code == 413 and "EVENT_PIPELINE_API_MAX_UPLOAD_BYTES" in too_big.json()["message"]
        at_once = threading.Event()
        at_once.set()
        try:
            streamed = client.post(  # no Content-Length: cut off while streaming
                "/v1/events/import/json",
                content=_slow_body(big.read_bytes(), "big.zip", at_once),
                headers={"Content-Type": "multipart/form-data; boundary=api-test-boundary"},
            )
        except httpx.TransportError:  # the server answered and closed while the client was still sending
            pass
        else:
            assert streamed.status_code == 413, streamed.text
        not_zip = tmp_path / "notes.zip"
        not_zip.write_text("not a zip")
        assert stack.upload(client, not_zip).json() == {"message": "the upload is not a zip archive"}
        refused = stack.upload(client, archive, key="x/y")
        assert refused.status_code == 400 and "invalid archive key 'x/y'" in refused.json()["message"]
        assert client.post("/v1/events/import/json", data={"key": "k"}, files={"other": b"x"}).status_code == 400
    assert stack.leftovers() == []

    # At most MAX_ACTIVE imports of one user at once: three uploads held open, the fourth is refused.
    gate = threading.Event()
    data = archive.read_bytes()
    with stack.client("busy@example.org") as client, ThreadPoolExecutor(3) as pool:
        post = client.post
        headers = {"Content-Type": "multipart/form-data; boundary=api-test-boundary"}
        held = [
            pool.submit(
                post, "/v1/events/import/json", content=_slow_body(data, f"busy-{i}.zip", gate), headers=headers
            )
            for i in range(3)
        ]
        stack.wait(lambda: len(stack.leftovers()) == 3, "three uploads in progress", 60)
        refused = stack.upload(client, archive, name="busy-4.zip")
        gate.set()
        assert refused.status_code == 429 and "at most 3" in refused.json()["message"]
        bodies = [stack.wait_task(client, f.result().json()["task_id"]) for f in held]
    assert [b["state"] for b in bodies] == ["SUCCESS"] * 3


def test_dry_run_validates_and_keeps_nothing(stack: Stack):
    path = sample("FOSSASIASummit2015")
    before = sorted(stack.uploads.glob("*"))
    with stack.client("dry@example.org") as client:
        valid = client.post(
            "/v1/events/import/json",
            params={"dry_run": "true"},
            files={"file": (path.name, path.read_bytes())},
        ).json()
        invalid = client.post(
            "/v1/events/import/json?dry_run=true", files={"file": ("b.zip", sample(BROKEN_SAMPLE).read_bytes())}
        ).json()
        assert client.get("/v1/import-jobs").json()["items"] == []
    assert valid["state"] == "VALID" and valid["counts"] == expected(path)["counts"] and valid["key"] == path.stem
    assert invalid["state"] == "INVALID" and invalid["errors"][0]["file"] == "session_types"
    assert scalar(stack.db_url, "select count(*) from import_jobs where key in (:a, 'b')", a=path.stem) == 0
    assert sorted(stack.uploads.glob("*")) == before


def test_twenty_uploads_at_once_each_end_once(stack: Stack, tmp_path):
    uploads = []
    for i in range(20):
        files = kebab_event()
        files["event"]["name"] = f"Burst {i:02d}"
        uploads.append((f"burst{i:02d}@example.org", write_zip(tmp_path / f"burst-{i:02d}.zip", files)))
    for i in range(2):  # two uploads of one key at once, different bytes: serialised, one event
        files = kebab_event()
        files["event"]["name"] = f"Same {i}"
        uploads.append((f"same{i}@example.org", write_zip(tmp_path / f"v{i}" / "same.zip", files)))

    def submit(item):
        email, path = item
        with stack.client(email) as client:
            response = stack.upload(client, path)
            assert response.status_code == 200, response.text
            return email, response.json()["task_id"]

    with ThreadPoolExecutor(len(uploads)) as pool:
        tasks = list(pool.map(submit, uploads))
    for email, task_id in tasks:
        with stack.client(email) as client:
            assert stack.wait_task(client, task_id, timeout=600)["state"] == "SUCCESS"
    keys = [f"burst-{i:02d}" for i in range(20)]
    found = rows(stack.db_url, "select import_key, name from events where import_key like 'burst-%' order by 1")
    assert [tuple(r) for r in found] == [(k, f"Burst {k[-2:]}") for k in keys]
    states = rows(stack.db_url, "select key, count(*) from import_jobs where key like 'burst-%' group by key")
    assert sorted(tuple(r) for r in states) == [(k, 1) for k in keys]  # each exactly once
    spans = rows(stack.db_url, "select started_at, finished_at, run_id from import_jobs where key = 'same' order by 1")
    assert len(spans) == 2 and spans[0][1] <= spans[1][0]  # one after the other
    last = [email for email, task_id in tasks if task_id == spans[1][2]][0]  # same0@ or same1@
    assert scalar(stack.db_url, "select name from events where import_key = 'same'") == f"Same {last[4]}"
    with dg.DagsterInstance.from_config(str(stack.home)) as instance:
        done = dg.RunsFilter(run_ids=[t for _, t in tasks], statuses=[dg.DagsterRunStatus.SUCCESS])
        stack.wait(lambda: len(instance.get_runs(done)) == len(tasks), "every run to end (checks follow the commit)")
        for email, task_id in tasks:  # one upload, one run: nothing submitted twice
            [run] = instance.get_runs(dg.RunsFilter(tags={"event_pipeline/user": email}))
            assert (run.run_id, run.job_name, run.status) == (task_id, "import_archive", dg.DagsterRunStatus.SUCCESS)
