"""``event-pipeline``: import or validate an archive from the command line.

``import`` runs the Dagster import job in this process on a real Dagster
instance (``DAGSTER_HOME``, else a project-local home), so the run shows up
in the UI afterwards. The last line on stdout is always one JSON object;
Dagster's own logging goes to stderr.

The printed state is the truth about the database: SUCCESS only if the
import committed, FAILURE only if nothing did. Whatever happens once the job
has run (an error, SIGINT, SIGTERM), the run's ``import_jobs`` row decides,
and a row still RUNNING is closed as FAILURE, so no run of this command
leaves one behind. Printing cannot fail: text the terminal cannot encode
(a lone surrogate, anything on an ASCII-only stdout) is printed with JSON's
``\\u`` escapes.

Only light modules are imported here, so that the console script handles
SIGINT and SIGTERM (:func:`run`) before the slow imports (Dagster) begin.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import socket
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from event_pipeline.intake import keys
from event_pipeline.problems import ImportFailed, Problem
from event_pipeline.redact import mask

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

log = logging.getLogger("event_pipeline.cli")
# --help's text: plain, unlike the module docstring (reStructuredText for the API docs).
DESCRIPTION = (
    "Import an Open Event export archive into the database (SQLite or PostgreSQL) in one transaction, "
    "or validate it without writing anything. The last line on stdout is the result as JSON; "
    "progress goes to stderr."
)
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
USAGE_EXIT = 2  # argparse's code for a usage error, kept

_stops: list[int] = []  # the stop signals received, in order
_handling_stops = False  # set by run(): this process is the console script and owns its signal handlers
# Dagster puts its own handlers in place while a run executes (and turns a
# signal into a step failure); the interpreter's wakeup fd still receives the
# number of every signal, so the message can name it.
_wakeup: int | None = None


def _stop(signum: int, _frame: Any) -> None:
    """SIGINT or SIGTERM: stop where we are, the way Dagster and the libraries expect (KeyboardInterrupt)."""
    _stops.append(signum)
    raise KeyboardInterrupt


def _note_stop(signum: int, _frame: Any) -> None:
    """While the result is settled and printed, a further signal is only noted: the row must be closed."""
    _stops.append(signum)


def _defer_stops() -> None:
    if _handling_stops:
        for signum in STOP_SIGNALS:
            signal.signal(signum, _note_stop)


def _watch_signals() -> None:
    global _wakeup
    read, write = os.pipe()
    os.set_blocking(read, False)
    os.set_blocking(write, False)
    signal.set_wakeup_fd(write, warn_on_full_buffer=False)
    _wakeup = read


def _received() -> list[int]:
    """The stop signals received so far, in order (those only Dagster's handlers saw included)."""
    if _wakeup is not None:
        with contextlib.suppress(OSError):  # BlockingIOError: nothing new
            _stops.extend(n for n in os.read(_wakeup, 512) if n in STOP_SIGNALS and n not in _stops)
    return _stops


def _interrupted(when: str) -> str:
    received = _received()
    name = signal.Signals(received[0]).name if received else "a signal"
    return f"interrupted by {name} {when}"


@contextlib.contextmanager
def _signals_held() -> Iterator[None]:
    """SIGINT and SIGTERM held back by the kernel for the block, delivered (and handled) as soon as it ends."""
    held = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, held)


def _settings() -> ModuleType:
    """:mod:`event_pipeline.settings`, first imported with the stop signals held: it loads pydantic, whose
    compiled core aborts with an uncatchable panic when a KeyboardInterrupt interrupts its initialisation.
    A signal received meanwhile stops the command right after (one FAILURE line, as ever)."""
    with _signals_held():
        from event_pipeline import settings
    return settings


def _emit(payload: dict[str, Any]) -> int:
    """Print ``payload`` as one JSON line; return the exit code its state means. Never raises.

    Text the stream cannot encode (a lone surrogate, any non-ASCII character
    on an ASCII stdout) is written with JSON's ``\\u`` escapes instead, which
    every encoding can carry and every JSON reader decodes.
    """
    code = 0 if payload.get("state") in ("SUCCESS", "VALID") else 1
    try:
        try:
            text = json.dumps(payload, ensure_ascii=False, default=str)
        except (TypeError, ValueError) as exc:  # not JSON at all: say so, keeping the state
            brief = {"state": payload.get("state"), "key": payload.get("key")}
            text = json.dumps({**brief, "error": f"the result could not be printed: {exc}"}, default=repr)
        try:
            text.encode(getattr(sys.stdout, "encoding", None) or "utf-8")
        except (UnicodeEncodeError, LookupError):
            text = json.dumps(json.loads(text), ensure_ascii=True)
        sys.stdout.write(text + "\n")
        sys.stdout.flush()
    except Exception:  # a closed or broken stdout: nothing more can be said; the exit code still tells
        log.debug("could not print the result", exc_info=True)
    return code


def _failure(errors: list[Problem], key: str | None = None, warnings: list[Problem] | None = None) -> int:
    from event_pipeline.publish import result

    return _emit(result.failure(errors, warnings, key))


@contextlib.contextmanager
def _home_lock(home: Path) -> Iterator[None]:
    import fcntl

    with open(home / ".event-importer.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _checked(path: str, key: str | None, url: str) -> tuple[Path, str | None, list[Problem]]:
    """The archive, its key (``--key`` or from the file name), and every reason they (or the
    database URL) cannot be used.

    Checked before anything is opened or built from them: a FIFO or a device
    is never read (it would block or never end), and a key that breaks the
    rule of :mod:`event_pipeline.intake.keys` comes back as None.
    """
    from event_pipeline.db import url_problem  # SQLAlchemy: imported once the signal handlers are in place

    archive = Path(path).expanduser().absolute()
    unusable = keys.file_problem(archive)
    if key is None:
        key = keys.key_from_name(archive.name)
    error = keys.key_error(key)
    problems = [Problem(archive.name or None, None, None, unusable)] if unusable else []
    problems += [Problem(None, None, "key", error)] if error else []
    bad_url = url_problem(url)
    problems += [Problem(None, None, "database_url", bad_url)] if bad_url else []
    return (archive if problems else archive.resolve()), None if error else key, problems


def run_import(path: str, key: str | None, force: bool, database_url: str | None, verbose: bool = False) -> int:
    """Run the import job in-process; print the result JSON and return the exit code (0: SUCCESS).

    stderr shows one line per step (:mod:`event_pipeline.progress`), or with ``verbose`` Dagster's own log.

    The archive must be a regular file and its key valid (else FAILURE before
    anything is written). After the job, :func:`_settle` decides what to
    print from what was committed.
    """
    settings = _settings()
    url = settings.database_url(database_url)
    archive, key, refused = _checked(path, key, url)
    if refused:
        return _failure(refused, key)
    home = settings.dagster_home()
    os.environ["DAGSTER_HOME"] = str(home)  # the instance of this run, for Dagster and whatever it starts

    import dagster as dg

    from event_pipeline import progress
    from event_pipeline.assets import ARCHIVES
    from event_pipeline.assets.common import HOST_TAG, KEY_TAG, PID_TAG
    from event_pipeline.definitions import IMPORT_JOB_NAME, defs, import_run_config
    from event_pipeline.resources.database import run_scoped

    with _home_lock(home):
        # A fresh SQLite-backed home creates its tables on first use; two
        # imports starting at once must not both try.
        instance = dg.DagsterInstance.get()
        instance.get_runs(limit=1)
        instance.all_instigator_state()
        if not instance.has_dynamic_partition(ARCHIVES.name, key):
            instance.add_dynamic_partitions(ARCHIVES.name, [key])
    run_id = str(uuid.uuid4())  # known before the run starts, to find its row however it ends
    outcome = None
    stopped: BaseException | None = None
    try:
        try:
            with instance:
                job = progress.with_progress(defs.resolve_job_def(IMPORT_JOB_NAME))
                run_config = import_run_config(str(archive), force=force)
                outcome = job.execute_in_process(
                    instance=instance,
                    partition_key=key,
                    run_id=run_id,
                    run_config=dg.RunConfig(ops=run_config.ops, loggers=progress.logger_config(job, verbose)),
                    # The URL goes to this run's resource object, not to run config or the environment:
                    # Dagster stores run config (and config defaults) in its run storage and shows them.
                    resources={"database": run_scoped(url)},
                    tags={
                        KEY_TAG: key,
                        HOST_TAG: socket.gethostname(),
                        PID_TAG: str(os.getpid()),
                        "event_pipeline/source": "cli",
                    },
                    raise_on_error=False,
                )
        finally:
            _defer_stops()
    except BaseException as exc:  # noqa: BLE001 - SIGINT/SIGTERM included: the row must still be closed
        _defer_stops()
        stopped = exc
    return _emit(_settle(url, run_id, key, archive, force, outcome, stopped))


def _settle(
    url: str, run_id: str, key: str, archive: Path, force: bool, outcome: Any, stopped: BaseException | None
) -> dict[str, Any]:
    """The result to print, from what the run committed; closes its row if it is still RUNNING.

    The job's own result when it succeeded; otherwise the ``import_jobs``
    row: SUCCESS (the import committed and something failed afterwards)
    gives the SUCCESS result rebuilt from the row, FAILURE its errors, and a
    row still RUNNING (or none) is closed as FAILURE with the reason.
    """
    from event_pipeline.db import get_engine
    from event_pipeline.publish import import_log, result

    if outcome is not None and outcome.success and stopped is None:
        with contextlib.suppress(Exception):
            return outcome.output_for_node("import_result")
    reason = mask(_reason(outcome, stopped))
    try:
        engine = get_engine(url)
        row = import_log.get_job(engine, run_id)
        if row and row["state"] == "SUCCESS":
            return _success_from_row(engine, row, force)
        if not row or row["state"] != "FAILURE" or not row.get("errors"):
            row = import_log.close_unfinished(engine, key=key, run_id=run_id, error=reason, path=str(archive))
    except Exception as exc:  # the database itself may be what failed
        log.debug("could not read or close the import_jobs row", exc_info=True)
        note = f"{reason} (the run's import_jobs row could not be read: {type(exc).__name__}: {_first_line(exc)})"
        return result.failure([Problem(None, None, None, mask(note))], key=key)
    errors, warnings = result.from_job(row)
    return result.failure(errors or [Problem(None, None, None, reason)], warnings, key)


def _success_from_row(engine: Engine, row: dict[str, Any], force: bool) -> dict[str, Any]:
    """The SUCCESS result as :func:`event_pipeline.publish.result.success` makes it, from the committed row."""
    from event_pipeline.publish import import_log, result

    previous = import_log.previous_success_sha256(engine, row["key"], row["id"])
    return {
        "state": "SUCCESS",
        "result": row["result"],
        "key": row["key"],
        "counts": row["counts"],
        "diff": row["diff"],
        **result.listed(warnings=[Problem(**w) for w in row["warnings"] or []]),
        "unmapped": row.get("unmapped") or {},
        "unchanged_archive": not force and previous is not None and previous == row["archive_sha256"],
    }


def _reason(outcome: Any, stopped: BaseException | None) -> str:
    """Why the run did not end in a result: the signal, the exception, or the first failed step's error."""
    if isinstance(stopped, KeyboardInterrupt):
        return _interrupted("during the import")
    if stopped is not None:
        return f"{type(stopped).__name__}: {_first_line(stopped)}"
    step_failures = [e for e in outcome.all_events if e.is_step_failure] if outcome is not None else []
    if not step_failures:
        return "import failed"
    error = step_failures[0].step_failure_data.error
    if error is not None and _innermost(error).cls_name == "DagsterExecutionInterruptedError":
        return _interrupted("during the import")  # Dagster turns SIGINT/SIGTERM into this at a step
    return _root_cause(error)


def _innermost(error: Any) -> Any:
    while getattr(error, "cause", None) is not None:
        error = error.cause
    return error


def _root_cause(error: Any) -> str:
    """The innermost error's first line: Dagster wraps the real one in its own."""
    if error is None:
        return "import failed"
    lines = _innermost(error).message.strip().splitlines()
    return lines[0] if lines else "import failed"


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else ""


def _validation_engine(url: str) -> Engine:
    """An engine to diff against, opened without writing: no schema, and no SQLite file, is made.

    A SQLite file that does not exist yet, or a database without the schema,
    means nothing was imported: the diff is against an empty in-memory schema.
    """
    from sqlalchemy.engine import make_url

    from event_pipeline.db import get_engine, has_schema

    empty = "sqlite://"
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database in ("", ":memory:") or not Path(database).is_file():
            return get_engine(empty)
    engine = get_engine(url, create_schema=False)
    return engine if has_schema(engine) else get_engine(empty)


def run_validate(path: str, key: str | None, database_url: str | None) -> int:
    """Dry run: every problem and the would-be diff; writes nothing anywhere (no data folder, no SQLite file)."""
    settings = _settings()
    from event_pipeline import importer
    from event_pipeline.publish import result

    url = settings.database_url(database_url, create=False)
    archive, key, refused = _checked(path, key, url)
    if refused:
        state = "FAILURE" if any(p.field == "database_url" for p in refused) else "INVALID"
        return _emit({**result.failure(refused, key=key), "state": state})
    engine = _validation_engine(url)
    try:
        validated = importer.validate_archive(engine, archive, key, force=True, reserve=False)
    except ImportFailed as exc:
        return _emit({**result.failure(exc.errors, exc.warnings, key), "state": "INVALID"})
    try:
        counts, diff = importer.summarise(importer.plan_all(engine, validated, reserve=False))
    finally:
        importer.release_frozen()  # nothing is published: release here what validation froze
    return _emit(
        {
            "state": "VALID",
            "key": key,
            "event_name": validated.normalised.event.values.get("name"),
            "counts": counts,
            "diff": diff,
            **result.listed(warnings=validated.warnings),
            "unmapped": validated.unmapped,
        }
    )


class UsageError(Exception):
    """The command line is not one we take; ``parser`` is the (sub)command's, for its usage line."""

    def __init__(self, parser: argparse.ArgumentParser, message: str):
        super().__init__(message)
        self.parser = parser


def run_db_upgrade(database_url: str | None) -> int:
    """``db upgrade``: the schema at the newest Alembic revision; prints the revisions before and after."""
    from event_pipeline import settings
    from event_pipeline.db import get_engine, url_problem
    from event_pipeline.model import migrate

    url = settings.database_url(database_url)
    problem = url_problem(url)
    if problem:
        return _failure([Problem(None, None, "database_url", problem)])
    before, after = migrate.upgrade_schema(get_engine(url, create_schema=False))
    return _emit({"state": "SUCCESS", "from_revision": before, "revision": after})


class _Parser(argparse.ArgumentParser):
    """An argument parser that raises instead of exiting, so a usage error still ends in a JSON line."""

    def error(self, message: str):  # noqa: ANN201 - argparse's signature (NoReturn)
        raise UsageError(self, message)


def build_parser() -> argparse.ArgumentParser:
    """The command line: ``import [path] [--key] [--force] [--database-url]``, ``validate path ...``, ``db upgrade``."""
    key_help = "archive key (default: the file name without .zip; letters, digits, '.', '_', '-'; see README)"
    parser = _Parser(prog="event-pipeline", description=DESCRIPTION)
    sub = parser.add_subparsers(dest="command", required=True)
    imp = sub.add_parser("import", help="import an archive (runs the Dagster job in-process)")
    imp.add_argument("path", nargs="?", help="the archive zip (default: the bundled example)")
    imp.add_argument("--key", help=key_help)
    imp.add_argument("--force", action="store_true", help="re-import even if the archive is unchanged")
    imp.add_argument("--database-url", help="SQLAlchemy URL (default: $EVENT_PIPELINE_DATABASE_URL or SQLite)")
    imp.add_argument(
        "-v", "--verbose", action="store_true", help="Dagster's own log on stderr instead of one line per step"
    )
    val = sub.add_parser("validate", help="dry run: list every problem and the would-be diff")
    val.add_argument("path")
    val.add_argument("--key", help=key_help)
    val.add_argument("--database-url")
    db = sub.add_parser("db", help="the database schema (Alembic)").add_subparsers(
        dest="db_command", metavar="action", required=True
    )
    upgrade = db.add_parser("upgrade", help="create the schema, or upgrade it to the newest revision")
    upgrade.add_argument("--database-url")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line ``argv``; the last stdout line is the result JSON. Returns the exit code.

    0 for SUCCESS or VALID, 1 for FAILURE or INVALID (an interruption
    included), 2 for a usage error (usage on stderr, a FAILURE line on stdout).
    """
    try:
        try:
            args = build_parser().parse_args(argv)
        except UsageError as exc:
            exc.parser.print_usage(sys.stderr)
            sys.stderr.write(f"{exc.parser.prog}: error: {exc}\n")
            _failure([Problem(None, None, None, f"usage: {exc}")])
            return USAGE_EXIT
        # Everything but the final JSON line goes to stderr.
        logging.basicConfig(stream=sys.stderr, level=logging.WARNING)
        if args.command == "db":
            return run_db_upgrade(args.database_url)
        if args.command == "import":
            example = str(_settings().example_archive())
            return run_import(args.path or example, args.key, args.force, args.database_url, args.verbose)
        return run_validate(args.path, args.key, args.database_url)
    except KeyboardInterrupt:  # before the job started (or in validate): nothing was committed
        _defer_stops()
        return _failure([Problem(None, None, None, _interrupted("before anything was committed"))])
    except Exception as exc:  # never a bare traceback: the caller parses our last line
        log.debug("unexpected error", exc_info=True)
        return _failure([Problem(None, None, None, mask(f"{type(exc).__name__}: {_first_line(exc)}"))])


def run() -> None:
    """The console script: :func:`main`, then exit without tearing the heap down.

    SIGINT and SIGTERM are handled from the start (also while Dagster is
    imported): the command stops, closes its run's row, and prints a FAILURE
    line (or the SUCCESS that had committed), exit code 1.

    A large import leaves about 1 GB of Python objects (the run's captured
    outputs) whose one-by-one deallocation at interpreter exit took ~4 s at
    100k sessions, longer than some whole imports. Everything that matters is
    done by now (the transaction committed, the instance closed); output and
    log handlers are flushed, then the process ends at once, as mypy does.
    """
    global _handling_stops
    _handling_stops = True
    for signum in STOP_SIGNALS:
        signal.signal(signum, _stop)
    _watch_signals()
    code = main()
    _defer_stops()
    with contextlib.suppress(Exception):
        logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)


if __name__ == "__main__":
    run()
