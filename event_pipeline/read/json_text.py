"""The JSON text of a data file: arrays read one element at a time, nesting measured without recursion.

- :func:`array_spans` / :func:`array_elements`: the elements of a top-level array,
  one at a time (with where each begins and ends), raising the errors and positions
  ``json.loads`` would;
- :func:`brackets`: a cheap upper bound of how deeply a span of text nests;
- :func:`measure`: how deeply a parsed value nests and the first
  :class:`~event_pipeline.read.storable.NotStorable` marker in it, with its path;
- the markers of a data file's state: ``INVALID`` (the problem is recorded),
  ``STREAMED`` (read once as a stream, not kept), ``DROPPED`` (a record removed by
  screening).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from typing import Any

from event_pipeline.read.storable import NotStorable

INVALID = object()  # unreadable or not JSON: the problem is recorded
STREAMED = object()  # read once, as a stream: not kept
DROPPED = object()  # a record removed by screening: the problem is recorded
WHITESPACE = re.compile(r"[ \t\n\r]*")


def skip_whitespace(text: str, pos: int = 0) -> int:
    """The index of the first character at or after ``pos`` that is no JSON whitespace."""
    match = WHITESPACE.match(text, pos)
    assert match is not None  # the pattern matches the empty string
    return match.end()


_DECODER = json.JSONDecoder()
ODD_ESCAPE = re.compile(rb"\\u(?:0000|[dD])")  # \u0000, or \uDxxx: possibly a lone surrogate


def brackets(text: str, begin: int, end: int) -> int:
    """An upper bound of how deeply ``text[begin:end]`` nests: its opening brackets (cheap, in C)."""
    return text.count("[", begin, end) + text.count("{", begin, end)


def measure(value: Any) -> tuple[int, tuple[str, NotStorable] | None]:
    """How deeply ``value`` nests (a scalar 0, ``[]`` 1, ``[[1]]`` 2), and the first :class:`NotStorable`
    in it with its path (``[3].lat``); iterative, so any depth the parser produced is measured."""
    deepest, found = 0, None
    stack: list[tuple[Any, int, str]] = [(value, 0, "")]
    while stack:
        item, depth, path = stack.pop()
        if isinstance(item, dict):
            deepest = max(deepest, depth + 1)
            stack.extend((v, depth + 1, f"{path}.{k}") for k, v in item.items())
        elif isinstance(item, list):
            deepest = max(deepest, depth + 1)
            stack.extend((v, depth + 1, f"{path}[{i}]") for i, v in enumerate(item))
        elif found is None and isinstance(item, NotStorable):
            found = (path, item)
    return deepest, found


def array_spans(
    text: str, start: int, decode: Callable[[str, int], tuple[Any, int]] = _DECODER.raw_decode
) -> Iterator[tuple[Any, int, int]]:
    """The elements of the JSON array at ``text[start]``, one at a time, each with where its text begins
    and ends, with the errors (and positions) ``json.loads`` would report."""
    index = skip_whitespace(text, start + 1)
    if text.startswith("]", index):
        index += 1
    else:
        while True:
            begin = index
            value, index = decode(text, index)
            yield value, begin, index
            index = skip_whitespace(text, index)
            if text.startswith(",", index):
                index = skip_whitespace(text, index + 1)
            elif text.startswith("]", index):
                index += 1
                break
            else:
                raise json.JSONDecodeError("Expecting ',' delimiter", text, index)
    end = skip_whitespace(text, index)
    if end != len(text):
        raise json.JSONDecodeError("Extra data", text, end)


def array_elements(text: str, start: int) -> Iterator[Any]:
    """The elements of the JSON array at ``text[start]``, one at a time (see :func:`array_spans`)."""
    for value, _, _ in array_spans(text, start):
        yield value
