"""The JSON text of a data file: arrays read one element at a time, nesting measured without recursion.

- :func:`array_spans` / :func:`array_elements`: the elements of a top-level array,
  one at a time (with where each begins and ends), from its text read in pieces
  (:class:`ChunkedText`), raising the errors and positions ``json.loads`` would;
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
from collections.abc import Callable, Iterable, Iterator
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


# After a number at the end of the text read so far, more digits, a fraction or an exponent may follow.
_NUMBER_TAIL = re.compile(r"[0-9.eE+\-]*\Z")
DROP_CHARS = 1 << 20  # text already parsed is forgotten once this much of it has piled up


class ChunkedText:
    """The text of a data file read in pieces: ``text`` is the part not yet forgotten, which starts at
    ``base`` in the whole (after ``lines`` newlines, ``column`` characters into its line). Errors are
    raised with their place in the whole text, as ``json.loads`` of the whole would give it."""

    def __init__(self, chunks: Iterable[str], drop_chars: int = DROP_CHARS):
        self._chunks = iter(chunks)
        self.drop_chars = drop_chars
        self.text = ""
        self.base = self.lines = self.column = 0
        self.ended = False

    def more(self, at_least: int = 1) -> bool:
        """Append the next pieces, at least ``at_least`` characters of them if the text goes on; False (and
        ``ended``) when there is none."""
        added: list[str] = []
        size = 0
        for chunk in self._chunks:
            added.append(chunk)
            size += len(chunk)
            if size >= at_least:
                break
        else:
            self.ended = True
        if size:
            self.text = "".join([self.text, *added])
        return size > 0

    def rest(self) -> Iterator[str]:
        """The pieces not read yet."""
        return self._chunks

    def skip(self, index: int) -> int:
        """The index of the first character at or after ``index`` that is no whitespace (reading on as
        needed), or the length of the text at its end."""
        while True:
            index = skip_whitespace(self.text, index)
            if index < len(self.text) or not self.more():
                return index

    def at(self, index: int, char: str) -> bool:
        """Whether ``char`` is at ``index`` (reading on as needed)."""
        while index >= len(self.text) and self.more():
            pass
        return self.text.startswith(char, index)

    def decode(self, decode: Callable[[str, int], tuple[Any, int]], index: int) -> tuple[Any, int]:
        """The value at ``index`` and where it ends, read on until it is whole: until it parses and is
        not a number that may go on in the next piece."""
        while True:
            try:
                value, end = decode(self.text, index)
            except json.JSONDecodeError as exc:
                # Perhaps only cut short by the end of the text read so far: read on, as much again as is
                # held each time, so a value that is wrong for good costs a linear read to the end, not a
                # copy of the whole text per piece.
                if self.more(len(self.text)):
                    continue
                raise self.located(exc.msg, exc.pos) from None
            if self.ended or not _NUMBER_TAIL.match(self.text, end) or not self.more():
                return value, end

    def drop(self, index: int) -> int:
        """Forget the text before ``index`` (parsed already) if there is much of it; the index to go on at."""
        if index < self.drop_chars:
            return index
        text = self.text
        newline = text.rfind("\n", 0, index)
        if newline >= 0:
            self.lines += text.count("\n", 0, index)
            self.column = index - newline - 1
        else:
            self.column += index
        self.base += index
        self.text = text[index:]
        return 0

    def located(self, message: str, index: int) -> json.JSONDecodeError:
        """``json.JSONDecodeError`` for ``message`` at ``index`` of ``text``, placed in the whole text."""
        error = json.JSONDecodeError(message, self.text, index)
        newline = self.text.rfind("\n", 0, index)
        error.pos = self.base + index
        error.lineno = self.lines + self.text.count("\n", 0, index) + 1
        error.colno = index - newline if newline >= 0 else self.column + index + 1
        error.args = (f"{message}: line {error.lineno} column {error.colno} (char {error.pos})",)
        return error


def array_spans(
    source: ChunkedText, start: int, decode: Callable[[str, int], tuple[Any, int]] = _DECODER.raw_decode
) -> Iterator[tuple[Any, str, int, int]]:
    """The elements of the JSON array at ``source.text[start]`` (read already), one at a time, each with the text it
    is in and where it begins and ends there (valid until the next element), with the errors (and
    positions) ``json.loads`` of the whole text would report. The text is read on as needed and what
    is parsed is forgotten, so a file's text is never whole in memory."""
    index = source.skip(start + 1)
    if source.at(index, "]"):
        index += 1
    else:
        while True:
            begin = index
            value, index = source.decode(decode, index)
            yield value, source.text, begin, index
            index = source.skip(index)
            if source.at(index, ","):
                index = source.skip(source.drop(index + 1))
            elif source.at(index, "]"):
                index += 1
                break
            else:
                raise source.located("Expecting ',' delimiter", index)
    end = source.skip(index)
    if end != len(source.text):
        raise source.located("Extra data", end)


def array_elements(chunks: Iterable[str], drop_chars: int = DROP_CHARS) -> Iterator[Any]:
    """The elements of the JSON array that the text given in ``chunks`` holds, after any whitespace (see
    :func:`array_spans`; the text must begin so)."""
    source = ChunkedText(chunks, drop_chars)
    start = source.skip(0)
    assert source.at(start, "[")
    for value, _, _, _ in array_spans(source, start):
        yield value
