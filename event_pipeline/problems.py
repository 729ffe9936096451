"""Problems found in an archive: errors stop an import, warnings do not.

Every check appends to a :class:`Problems` collector instead of raising, so a
user sees everything wrong with an archive in one go.

A problem's text is always printable and storable: NUL characters and lone
surrogates (which neither UTF-8 output nor PostgreSQL text can carry) are
written as ``\\u0000``-style escapes, and each part is cut to a bounded
length. An archive can produce a million problems, so a collector keeps the
first ``keep`` of each severity and only counts the others, by kind (the
message with its numbers and quoted values masked).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

# Longest text kept per part of a problem (characters); longer text is cut and its length noted.
TEXT_LIMITS = {"file": 300, "record_id": 120, "field": 120, "message": 1000}
DEFAULT_KEEP = 10_000  # EVENT_PIPELINE_MAX_PROBLEMS (see archive.Limits)
MAX_KINDS = 1_000  # kinds counted separately among the problems not kept
OTHER_KINDS = "(other kinds)"

_UNPRINTABLE = re.compile("[\x00\ud800-\udfff]")
_KIND_MASK = re.compile(r"'[^']*'|\"[^\"]*\"|\d+")


def clean_text(text: str, limit: int | None = None) -> str:
    """``text`` with NUL and lone surrogates escaped (``\\ud800``), cut to at most ``limit`` characters
    (the cut noted with the full length)."""
    if not text.isascii() or "\x00" in text:
        text = _UNPRINTABLE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)
    if limit is not None and len(text) > limit:
        suffix = f"… ({len(text)} characters)"
        text = text[: limit - len(suffix)] + suffix  # at most ``limit`` long: cutting again changes nothing
    return text


def _kind(file: str | None, message: str) -> str:
    masked = _KIND_MASK.sub("…", message)[:200]
    return f"{file}: {masked}" if file else masked


@dataclass(frozen=True)
class Problem:
    file: str | None
    record_id: str | None
    field: str | None
    message: str

    def __post_init__(self) -> None:
        for name, limit in TEXT_LIMITS.items():
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, clean_text(str(value), limit))

    def as_dict(self) -> dict[str, Any]:
        return {"file": self.file, "record_id": self.record_id, "field": self.field, "message": self.message}

    @property
    def kind(self) -> str:
        """What problems of one kind share: the file and the message with numbers and quoted values masked."""
        return _kind(self.file, self.message)

    def __str__(self) -> str:
        where = [p for p in (self.file, self.record_id and f"id {self.record_id}", self.field) if p]
        return f"{', '.join(where)}: {self.message}" if where else self.message


class ProblemList(list):
    """Problems of one severity: the first ``keep`` as :class:`Problem` objects, the rest counted by kind.

    A plain list everywhere a list of problems is expected; :attr:`total` and
    :meth:`kinds` also count the problems that were not kept.
    """

    def __init__(self, items: Iterable[Problem] = (), keep: int | None = None):
        super().__init__(items)
        self.keep = keep
        self.omitted: Counter[str] = Counter()

    def add(self, problem: Problem) -> None:
        if self.keep is None or len(self) < self.keep:
            self.append(problem)
        else:
            self._count(problem.kind)

    def new(self, file: str | None, record_id: str | None, field: str | None, message: str) -> None:
        """Add a problem given by its parts; one that is not kept is only counted, never built (a
        million bad records must not cost a million objects)."""
        if self.keep is None or len(self) < self.keep:
            self.append(Problem(file, record_id, field, message))
        else:
            self._count(
                _kind(file and clean_text(file, TEXT_LIMITS["file"]), clean_text(message, TEXT_LIMITS["message"]))
            )

    def _count(self, kind: str) -> None:
        if kind not in self.omitted and len(self.omitted) >= MAX_KINDS:
            kind = OTHER_KINDS  # the counts per kind stay bounded too
        self.omitted[kind] += 1

    @property
    def total(self) -> int:
        return len(self) + sum(self.omitted.values())

    def kinds(self) -> Counter[str]:
        """Problems per kind, kept or not."""
        return Counter(p.kind for p in self) + self.omitted

    def __add__(self, other: Iterable[Problem]) -> ProblemList:  # type: ignore[override]
        joined = ProblemList([*self, *other], keep=None)
        omitted: Counter[str] = Counter(getattr(other, "omitted", {}))
        joined.omitted = self.omitted + omitted
        return joined


def total(problems: list[Problem]) -> int:
    """How many problems a list stands for, including those a :class:`ProblemList` did not keep."""
    return getattr(problems, "total", len(problems))


def kinds(problems: list[Problem]) -> Counter[str]:
    """Problems per kind, including those a :class:`ProblemList` did not keep."""
    return problems.kinds() if isinstance(problems, ProblemList) else Counter(p.kind for p in problems)


@dataclass
class Problems:
    """The collector: ``keep`` problems of each severity are kept, all are counted."""

    keep: int | None = DEFAULT_KEEP
    errors: ProblemList = field(default=None)  # type: ignore[assignment]
    warnings: ProblemList = field(default=None)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if self.errors is None:
            self.errors = ProblemList(keep=self.keep)
        if self.warnings is None:
            self.warnings = ProblemList(keep=self.keep)

    def error(self, file: str | None, message: str, record_id: Any = None, field: str | None = None) -> None:
        self.errors.new(file, _text(record_id), field, message)

    def warn(self, file: str | None, message: str, record_id: Any = None, field: str | None = None) -> None:
        self.warnings.new(file, _text(record_id), field, message)


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


class ImportFailed(Exception):
    """The archive cannot be imported; ``errors`` lists every reason (or the first ones, see :class:`ProblemList`)."""

    def __init__(self, errors: list[Problem], warnings: list[Problem] | None = None):
        self.errors = errors
        self.warnings = warnings if warnings is not None else []
        super().__init__(summary(errors))


def summary(errors: list[Problem]) -> str:
    """One line naming the first problem and how many more there are."""
    if not errors:
        return "import failed"
    count = total(errors)
    more = f" (and {count - 1} more problem{'s' if count > 2 else ''})" if count > 1 else ""
    return f"{errors[0]}{more}"


def first_line(exc: BaseException) -> str:
    """The first non-empty line of an exception's message ("" if none): what a one-line report shows of it
    (driver errors run to many lines of context)."""
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else ""
