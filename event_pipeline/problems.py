"""Problems found in an archive: errors stop an import, warnings do not.

Every check appends to a :class:`Problems` collector instead of raising, so a
user sees everything wrong with an archive in one go.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Problem:
    file: str | None
    record_id: str | None
    field: str | None
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {"file": self.file, "record_id": self.record_id, "field": self.field, "message": self.message}

    def __str__(self) -> str:
        where = [p for p in (self.file, self.record_id and f"id {self.record_id}", self.field) if p]
        return f"{', '.join(where)}: {self.message}" if where else self.message


@dataclass
class Problems:
    errors: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)

    def error(self, file: str | None, message: str, record_id: Any = None, field: str | None = None) -> None:
        self.errors.append(Problem(file, _text(record_id), field, message))

    def warn(self, file: str | None, message: str, record_id: Any = None, field: str | None = None) -> None:
        self.warnings.append(Problem(file, _text(record_id), field, message))


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


class ImportFailed(Exception):
    """The archive cannot be imported; ``errors`` lists every reason."""

    def __init__(self, errors: list[Problem], warnings: list[Problem] | None = None):
        self.errors = errors
        self.warnings = warnings or []
        super().__init__(summary(errors))


def summary(errors: list[Problem]) -> str:
    """One line naming the first problem and how many more there are."""
    if not errors:
        return "import failed"
    more = f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})" if len(errors) > 1 else ""
    return f"{errors[0]}{more}"
