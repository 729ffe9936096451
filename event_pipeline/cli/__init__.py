"""``event-pipeline``: import or validate an archive, or export an event, from the command line.

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
import logging
import os
import sys

from event_pipeline import collector
from event_pipeline.cli import signals
from event_pipeline.cli.commands import run_db_upgrade, run_export, run_token
from event_pipeline.cli.importing import run_import
from event_pipeline.cli.output import emit, failure
from event_pipeline.cli.validating import run_validate, validation
from event_pipeline.problems import Problem, first_line
from event_pipeline.redact import mask

__all__ = ["build_parser", "emit", "main", "run", "validation"]

log = logging.getLogger("event_pipeline.cli")
USAGE_EXIT = 2  # argparse's code for a usage error, kept
# --help's text: plain, unlike the module docstring (reStructuredText for the API docs).
DESCRIPTION = (
    "Import an Open Event export archive into the database (SQLite or PostgreSQL) in one transaction, "
    "validate it without writing anything, or export an imported event back to a zip. The last line on "
    "stdout is the result as JSON; progress goes to stderr."
)
_emit = emit  # the name the CLI tests know


class UsageError(Exception):
    """The command line is not one we take; ``parser`` is the (sub)command's, for its usage line."""

    def __init__(self, parser: argparse.ArgumentParser, message: str):
        super().__init__(message)
        self.parser = parser


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
    exp = sub.add_parser("export", help="write an imported event back to an Open Event zip (README: Export)")
    exp.add_argument("key", nargs="?", help="the event's archive key (or --event-id)")
    exp.add_argument("out", help="the zip to write")
    exp.add_argument("--event-id", type=int, help="the event's database id instead of its key")
    exp.add_argument("--dialect", choices=("source", "kebab", "snake"), default="source")
    exp.add_argument("--database-url")
    db = sub.add_parser("db", help="the database schema (Alembic)").add_subparsers(
        dest="db_command", metavar="action", required=True
    )
    upgrade = db.add_parser("upgrade", help="create the schema, or upgrade it to the newest revision")
    upgrade.add_argument("--database-url")
    tok = sub.add_parser("token", help="print a token for the HTTP import API (signed with its secret)")
    tok.add_argument("--email", required=True, help="the user: owns the imports, receives their result emails")
    tok.add_argument("--hours", type=int, help="lifetime (default: $EVENT_PIPELINE_TOKEN_HOURS or 24)")
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
            failure([Problem(None, None, None, f"usage: {exc}")])
            return USAGE_EXIT
        # Everything but the final JSON line goes to stderr.
        logging.basicConfig(stream=sys.stderr, level=logging.WARNING)
        if args.command == "export":
            return run_export(args.key, args.out, args.event_id, args.dialect, args.database_url)
        if args.command == "db":
            return run_db_upgrade(args.database_url)
        if args.command == "token":
            return run_token(args.email, args.hours)
        if args.command == "import":
            example = str(signals.settings_module().example_archive())
            return run_import(args.path or example, args.key, args.force, args.database_url, args.verbose)
        return run_validate(args.path, args.key, args.database_url)
    except KeyboardInterrupt:  # before the job started (or in validate): nothing was committed
        signals.defer_stops()
        return failure([Problem(None, None, None, signals.interrupted("before anything was committed"))])
    except Exception as exc:  # never a bare traceback: the caller parses our last line
        log.debug("unexpected error", exc_info=True)
        return failure([Problem(None, None, None, mask(f"{type(exc).__name__}: {first_line(exc)}"))])


def run() -> None:
    """The console script: :func:`main`, then exit without tearing the heap down.

    SIGINT and SIGTERM are handled from the start (also while Dagster is
    imported): the command stops, closes its run's row, and prints a FAILURE
    line (or the SUCCESS that had committed), exit code 1.

    A large import leaves about 1 GB of Python objects (the run's captured
    outputs) whose one-by-one deallocation at interpreter exit took ~4 s at
    100k sessions, longer than some whole imports. Everything that matters is
    done by now (the transaction committed, the instance closed); output and
    log handlers are flushed, the database connections closed, then the process ends at once, as mypy
    does.
    """
    signals.install()
    collector.hold_until_exit()  # the process ends with the import: no collection of what it frees anyway
    code = main()
    signals.defer_stops()
    # os._exit closes no connection: closing them here lets SQLite fold its write-ahead log into the
    # database file (the last connection's checkpoint), so a copy of the .db file alone holds the import.
    db = sys.modules.get("event_pipeline.db")  # not imported (a usage error): no engine to close
    if db is not None:
        with contextlib.suppress(Exception):
            db.dispose_engines()
    with contextlib.suppress(Exception):
        logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)
