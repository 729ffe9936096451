"""Import notifications: email over SMTP when configured, otherwise a log line.

``EVENT_PIPELINE_SMTP_URL`` is ``smtp://[user:password@]host[:port]`` (add
``?starttls=1`` to upgrade the connection) or ``smtps://...`` for TLS from the
start; ``EVENT_PIPELINE_NOTIFY_TO`` is a comma-separated list of addresses and
``EVENT_PIPELINE_NOTIFY_FROM`` the sender. Subjects follow the reference
server's: "Import of event X complete" / "Import of event X failed".

The URL may carry a password, so it only ever appears masked (:func:`mask`).
"""

from __future__ import annotations

import logging
import smtplib
import socket
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from event_pipeline import settings
from event_pipeline.redact import mask

log = logging.getLogger("event_pipeline.notify")
MAX_LISTED = 50  # problems listed in a body; the rest are counted
TIMEOUT_SECONDS = 15


@dataclass(frozen=True)
class Notification:
    subject: str
    body: str
    ok: bool


def _problem_line(problem: dict[str, Any]) -> str:
    where = [p for p in (problem.get("file"), problem.get("record_id") and f"id {problem['record_id']}") if p]
    where += [problem["field"]] if problem.get("field") else []
    return f"- {', '.join(where)}: {problem['message']}" if where else f"- {problem['message']}"


def _listing(title: str, problems: list[dict[str, Any]]) -> list[str]:
    if not problems:
        return []
    lines = [f"{title} ({len(problems)}):", *(_problem_line(p) for p in problems[:MAX_LISTED])]
    if len(problems) > MAX_LISTED:
        lines.append(f"... and {len(problems) - MAX_LISTED} more")
    return [*lines, ""]


def run_url(run_id: str) -> str:
    """The run's page in the Dagster UI (:func:`event_pipeline.settings.ui_url`); a bulk import's row id
    ``<run id>/<index>`` links to its bulk run."""
    return f"{settings.ui_url()}/runs/{run_id.split('/', 1)[0]}"


def _event_link(url: str | None) -> list[str]:
    """The event's page, only when ``EVENT_PIPELINE_BASE_URL`` names a site that serves it:
    the default base URL has nothing behind it."""
    return [f"View the event: {url}"] if url and "base_url" in settings.current().model_fields_set else []


def success_message(job: dict[str, Any]) -> Notification:
    """From a SUCCESS ``import_jobs`` row (the result JSON's fields)."""
    result = job.get("result") or {}
    name = result.get("event_name") or job["key"]
    diff = job.get("diff") or {}
    lines = [
        f"Event {name} has been imported successfully.",
        "",
        *_event_link(result.get("url")),
        f"View the run: {run_url(job['run_id'])}",
        "",
        f"Archive: {job['key']} ({job.get('archive_path') or ''}, sha256 {job.get('archive_sha256') or '?'})",
        "Changes: " + ", ".join(f"{diff.get(k, 0)} {k}" for k in ("created", "updated", "deleted", "unchanged")),
        "Records: " + ", ".join(f"{v} {k}" for k, v in (job.get("counts") or {}).items()),
        f"Run: {job['run_id']}",
        "",
        *_listing("Warnings", job.get("warnings") or []),
    ]
    return Notification(f"Import of event {name} complete", "\n".join(lines).rstrip() + "\n", True)


def failure_message(job: dict[str, Any], event_name: str | None = None) -> Notification:
    """From a FAILURE ``import_jobs`` row: every error, as the reference server lists them."""
    name = event_name or job["key"]
    errors = job.get("errors") or [{"file": None, "record_id": None, "field": None, "message": job.get("error")}]
    lines = [
        f"The import of {job['key']} ({job.get('archive_path') or 'unknown archive'}) failed.",
        "",
        "The following error occurred:" if len(errors) == 1 else "The following errors occurred:",
        *(_problem_line(p) for p in errors[:MAX_LISTED]),
        *([f"... and {len(errors) - MAX_LISTED} more"] if len(errors) > MAX_LISTED else []),
        "",
        *_listing("Warnings", job.get("warnings") or []),
        f"Run: {job['run_id']}",
        f"View the run: {run_url(job['run_id'])}",
    ]
    return Notification(f"Import of event {name} failed", "\n".join(lines).rstrip() + "\n", False)


def recipients() -> list[str]:
    return [a.strip() for a in settings.current().notify_to.split(",") if a.strip()]


def smtp_configured() -> bool:
    """Whether ``EVENT_PIPELINE_SMTP_URL`` is set (emails can be sent at all)."""
    return bool(settings.current().smtp_url)


def send(notification: Notification, logger: logging.Logger | Any = None, to: list[str] | None = None) -> bool:
    """Email it to ``to`` (default: :func:`recipients`) when SMTP is configured, else log it; True if an
    email was sent.

    Never raises: a mail server being down must not stop the sensor that
    notifies, and later notifications.
    """
    logger = logger or log
    url = settings.current().smtp_url
    to = recipients() if to is None else to
    if not url or not to:
        logger.info(f"{notification.subject}\n{notification.body}")
        return False
    try:
        _send_smtp(url, to, notification)
    except Exception as exc:  # noqa: BLE001 - reported, never raised (see docstring)
        detail = mask(str(exc))
        logger.error(f"could not email {notification.subject!r} via {mask(url)}: {type(exc).__name__}: {detail}")
        return False
    logger.info(f"emailed {notification.subject!r} to {', '.join(to)} via {mask(url)}")
    return True


def _send_smtp(url: str, to: list[str], notification: Notification) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("smtp", "smtps"):
        raise ValueError(f"unsupported scheme {parts.scheme!r}: use smtp:// or smtps://")
    options = {k: v[-1].lower() for k, v in parse_qs(parts.query).items()}
    host = parts.hostname or "localhost"
    sender = settings.current().notify_from or f"event-pipeline@{socket.gethostname()}"
    message = EmailMessage()
    message["Subject"] = notification.subject
    message["From"] = sender
    message["To"] = ", ".join(to)
    message["Date"] = formatdate(localtime=True)
    message["Message-ID"] = make_msgid(domain="event-pipeline")
    message.set_content(notification.body)
    context = ssl.create_default_context()
    if parts.scheme == "smtps":
        server: smtplib.SMTP = smtplib.SMTP_SSL(host, parts.port or 465, timeout=TIMEOUT_SECONDS, context=context)
    else:
        server = smtplib.SMTP(host, parts.port or 25, timeout=TIMEOUT_SECONDS)
    with server:
        if parts.scheme == "smtp" and options.get("starttls") in ("1", "true", "yes"):
            server.starttls(context=context)
        if parts.username:
            server.login(unquote(parts.username), unquote(parts.password or ""))
        server.send_message(message)
