"""The result JSON: the reference server's task result, extended.

Its size is bounded whatever the archive: each list of problems holds the
first ``max_problems_listed`` (``EVENT_PIPELINE_MAX_PROBLEMS_LISTED``), with
the total; when some are left out, the counts per kind and a notice saying
where the others are (``import_jobs``) come along. Each problem's text is
bounded too (``problems.TEXT_LIMITS``).
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any

from event_pipeline.problems import Problem, ProblemList, kinds, summary, total
from event_pipeline.read.limits import Limits
from event_pipeline.settings import base_url

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

KINDS_LISTED = 50  # kinds named in a result; the others are summed up as one


def listed(errors: list[Problem] | None = None, warnings: list[Problem] | None = None) -> dict[str, Any]:
    """The ``errors`` (when given) and ``warnings`` entries of a result: capped lists, totals, and
    when something is left out, counts per kind and a notice naming the settings."""
    limits = Limits.from_env()
    out: dict[str, Any] = {}
    notices = []
    for name, problems in (("errors", errors), ("warnings", warnings or [])):
        if problems is None:
            continue
        count = total(problems)
        out[name] = [p.as_dict() for p in problems[: limits.max_problems_listed]]
        out[f"{name}_total"] = count
        if count > len(out[name]):
            out[f"{name[:-1]}_kinds"] = _top_kinds(problems)
            kept = min(len(problems), limits.max_problems)
            notices.append(
                f"{len(out[name])} of {count} {name} listed ({limits.hint('max_problems_listed')}); "
                f"import_jobs keeps the first {kept} ({limits.hint('max_problems')})"
            )
    if notices:
        out["notice"] = "; ".join(notices)
    return out


def _top_kinds(problems: list[Problem]) -> dict[str, int]:
    counts = kinds(problems).most_common()
    top = dict(counts[:KINDS_LISTED])
    rest = sum(n for _, n in counts[KINDS_LISTED:])
    if rest:
        top[f"({len(counts) - KINDS_LISTED} other kinds)"] = rest
    return top


def success(
    *,
    event_name: str,
    event_id: int,
    identifier: str,
    key: str,
    counts: dict[str, int],
    diff: dict[str, Any],
    warnings: list[Problem],
    unmapped: dict[str, dict[str, int]] | None = None,
    unchanged_archive: bool = False,
) -> dict[str, Any]:
    """The SUCCESS result. ``unmapped``: per data file, the source fields that are no column nor link
    (kept in each row's ``extra``) with how many records have them."""
    return {
        "state": "SUCCESS",
        "result": {"event_name": event_name, "id": event_id, "url": f"{base_url()}/events/{identifier}"},
        "key": key,
        "counts": counts,
        "diff": diff,
        **listed(warnings=warnings),
        "unmapped": unmapped or {},
        "unchanged_archive": unchanged_archive,
    }


def success_from_row(engine: Engine, row: dict[str, Any], force: bool = False) -> dict[str, Any]:
    """The SUCCESS result as :func:`success` made it, rebuilt from the committed ``import_jobs`` row.

    ``force``: whether the run was forced (then the archive is never reported
    unchanged). What the command line prints when something failed after the
    commit, and what the HTTP API's task returns.
    """
    from event_pipeline.publish import import_log  # import_log imports this module

    previous = import_log.previous_success_sha256(engine, row["key"], row["id"])
    return {
        "state": "SUCCESS",
        "result": row["result"],
        "key": row["key"],
        "counts": row["counts"],
        "diff": row["diff"],
        **listed(warnings=[Problem(**w) for w in row["warnings"] or []]),
        "unmapped": row.get("unmapped") or {},
        "unchanged_archive": not force and previous is not None and previous == row["archive_sha256"],
    }


def failure(errors: list[Problem], warnings: list[Problem] | None = None, key: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"state": "FAILURE", "error": summary(errors), **listed(errors, warnings or [])}
    if key is not None:
        out["key"] = key
    return out


def stored(problems: list[Problem]) -> list[dict[str, Any]]:
    """A list of problems as ``import_jobs`` keeps it: every problem kept (``max_problems``)."""
    return [p.as_dict() for p in problems]


def problem_counts(errors: list[Problem], warnings: list[Problem]) -> dict[str, Any]:
    """Totals and counts per kind of both severities, for ``import_jobs`` (which keeps only
    ``max_problems`` of each as a list)."""
    return {
        "errors_total": total(errors),
        "warnings_total": total(warnings),
        "error_kinds": dict(kinds(errors).most_common()),
        "warning_kinds": dict(kinds(warnings).most_common()),
    }


def from_job(row: dict[str, Any]) -> tuple[ProblemList, ProblemList]:
    """The errors and warnings of a FAILURE row of ``import_jobs``, with the problems it did not keep
    counted by kind again (from ``result``, see :func:`problem_counts`), so totals survive the trip."""
    counts = row.get("result") or {}
    lists = []
    for name, kinds_key in (("errors", "error_kinds"), ("warnings", "warning_kinds")):
        problems = ProblemList(Problem(**p) for p in row.get(name) or [])
        if kinds_key in counts:
            problems.omitted = Counter(counts[kinds_key]) - kinds(problems)
        lists.append(problems)
    return lists[0], lists[1]
