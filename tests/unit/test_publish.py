"""The publish stage's pure parts: the result JSON's bounded problem lists (publish/result.py) and the
content hash the plans compare rows by (plan/diff.py)."""

from __future__ import annotations

from event_pipeline.importer.failures import interrupted
from event_pipeline.plan.diff import content_hash
from event_pipeline.problems import Problem
from event_pipeline.publish import result


def _missing_photo(i: int) -> Problem:
    return Problem("speakers", str(i), "photo_url", f"media file '/images/{i}.jpg' is not in the archive; left empty")


def test_a_result_lists_the_first_problems_counts_all_and_says_where_the_rest_are(monkeypatch):
    monkeypatch.setenv("EVENT_PIPELINE_MAX_PROBLEMS_LISTED", "3")
    warnings = [_missing_photo(i) for i in range(10)]
    out = result.listed(warnings=warnings)
    assert [w["record_id"] for w in out["warnings"]] == ["0", "1", "2"]
    assert out["warnings_total"] == 10
    # the ten differ only in numbers and quoted paths: one kind
    assert out["warning_kinds"] == {warnings[0].kind: 10}
    assert out["notice"] == (
        "3 of 10 warnings listed (limit max_problems_listed=3; raise it with EVENT_PIPELINE_MAX_PROBLEMS_LISTED); "
        "import_jobs keeps the first 10 (limit max_problems=10000; raise it with EVENT_PIPELINE_MAX_PROBLEMS)"
    )


def test_a_short_list_is_given_whole_without_kinds_or_notice(monkeypatch):
    monkeypatch.setenv("EVENT_PIPELINE_MAX_PROBLEMS_LISTED", "3")
    out = result.listed(errors=[], warnings=[_missing_photo(1)])
    assert out == {"errors": [], "errors_total": 0, "warnings": [_missing_photo(1).as_dict()], "warnings_total": 1}


def test_a_failure_names_its_first_error_and_how_many_more():
    errors = [Problem("sessions", "7", "starts_at", "not a date-time"), Problem("tracks", "2", None, "no name")]
    out = result.failure(errors, key="conf")
    assert out["state"] == "FAILURE" and out["key"] == "conf"
    assert out["error"] == "sessions, id 7, starts_at: not a date-time (and 1 more problem)"
    assert out["errors_total"] == 2 and out["warnings"] == []


def test_kinds_beyond_the_listed_ones_are_summed_as_one_entry(monkeypatch):
    monkeypatch.setenv("EVENT_PIPELINE_MAX_PROBLEMS_LISTED", "1")
    # 60 kinds: one message, each in a file of its own (a kind is the file and the message's shape)
    warnings = [Problem(f"file{chr(97 + i % 26)}{i // 26}", None, None, "odd") for i in range(60)]
    kinds = result.listed(warnings=warnings)["warning_kinds"]
    assert len(kinds) == result.KINDS_LISTED + 1 and kinds["(10 other kinds)"] == 10


def test_the_content_hash_sees_values_and_key_order_and_nothing_else():
    row = {"title": "Keynote", "starts_at": "2016-03-18T01:30:00+00:00", "extra": {"a": 1, "b": 2}}
    assert content_hash(row) == content_hash(dict(row))  # a copy: same hash
    assert content_hash(row) != content_hash({**row, "title": "Keynote "})
    # extra keeps the archive's key order: an export written in another order reads as changed
    assert content_hash(row) != content_hash({**row, "extra": {"b": 2, "a": 1}})
    assert len(content_hash(row)) == 40  # SHA-1 hex, the width of the content_hash column


def _raised_while_handling(stop: BaseException) -> Exception:
    try:
        try:
            raise stop
        except BaseException:
            raise RuntimeError("can't change 'autocommit' now: connection in transaction status ACTIVE") from None
    except RuntimeError as exc:
        return exc


def test_an_error_raised_while_a_stop_was_handled_counts_as_the_stop():
    """A signal landing in a query leaves the connection busy; closing it raises a driver error whose context is
    the stop (``from None`` hides it from the traceback, not from ``__context__``): the import was interrupted."""
    assert interrupted(KeyboardInterrupt())
    assert interrupted(_raised_while_handling(KeyboardInterrupt()))
    assert interrupted(_raised_while_handling(SystemExit(1)))
    assert not interrupted(ValueError("a real error"))
    caused = RuntimeError("wrapped")
    caused.__cause__ = ValueError("root")
    assert not interrupted(caused)
    looped = RuntimeError("a cycle")
    looped.__context__ = looped
    assert not interrupted(looped)
