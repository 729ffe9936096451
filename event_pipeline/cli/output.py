"""What the command prints: one JSON line, whatever it holds and whatever stdout can encode."""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

from event_pipeline.problems import Problem

log = logging.getLogger("event_pipeline.cli")


def emit(payload: dict[str, Any]) -> int:
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


def failure(errors: list[Problem], key: str | None = None, warnings: list[Problem] | None = None) -> int:
    from event_pipeline.publish import result

    return emit(result.failure(errors, warnings, key))
