"""What the database would refuse, found before anything is written.

``validate`` must call VALID only what ``import`` can write, on SQLite and
PostgreSQL alike. SQLite stores almost anything, PostgreSQL refuses some
values at write time, so every normalised record is checked here against
the rules of the stricter of the two, derived from the schema's column
types (one rule per type, no list of columns):

* integer columns: the range of the column type (``Integer``: 32 bits);
* float columns: finite numbers (NaN and infinities are not JSON either);
* text: no NUL character (PostgreSQL text cannot hold it) and no lone
  surrogate (not Unicode: no UTF-8 encoder writes it);
* columns with a length (``String(n)``: the ``source_id`` and
  ``source_key`` keys): at most ``n`` characters;
* JSON columns (``extra`` and object fields): what a JSON type accepts and
  gives back to every reader (``extra->>'k'`` on PostgreSQL fails on an
  escaped NUL): the text rules above for keys and strings, finite numbers.

Each problem is an error with the file, the record's id and the field.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from event_pipeline.model.catalog import BY_NAME
from event_pipeline.model.schema import TABLES
from event_pipeline.problems import Problems, clean_text


class NotStorable:
    """A value the JSON parser read but no database column or JSON value can hold (``NaN``, an
    integer literal longer than Python reads); ``what`` says which, for the problem it becomes."""

    __slots__ = ("what",)

    def __init__(self, what: str):
        self.what = what

    def __repr__(self) -> str:
        return f"<{self.what}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, NotStorable) and other.what == self.what

    def __hash__(self) -> int:
        return hash(self.what)


@dataclass(frozen=True)
class ColumnRule:
    """What a column accepts: ``kind`` is ``int``, ``float``, ``text``, ``json`` or ``other``."""

    column: str
    kind: str
    low: int | None = None
    high: int | None = None
    length: int | None = None


_INT_BITS = ((sa.SmallInteger, 16), (sa.BigInteger, 64), (sa.Integer, 32))  # subclasses before Integer


def column_rule(column: sa.Column) -> ColumnRule:
    """The rule for one column, from its SQLAlchemy type."""
    kind = column.type
    for type_, bits in _INT_BITS:
        if isinstance(kind, type_):
            return ColumnRule(column.name, "int", -(1 << (bits - 1)), (1 << (bits - 1)) - 1)
    if isinstance(kind, sa.Float):
        return ColumnRule(column.name, "float")
    if isinstance(kind, sa.JSON):
        return ColumnRule(column.name, "json")
    if isinstance(kind, sa.String):  # Text too (no length)
        return ColumnRule(column.name, "text", length=kind.length)
    return ColumnRule(column.name, "other")


def table_rules(table: sa.Table) -> dict[str, ColumnRule]:
    """Every column's rule."""
    return {column.name: column_rule(column) for column in table.columns}


def text_problem(text: str) -> str | None:
    """Why ``text`` cannot be stored as text, or None."""
    if "\x00" in text:
        return "contains a NUL character (\\u0000), which the database cannot store"
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            return f"contains a lone surrogate ({clean_text(exc.object[exc.start])}), which is not valid Unicode"
    return None


def value_problem(value: Any, rule: ColumnRule, *, strings: bool = True) -> str | None:
    """Why ``value`` cannot go into a column with ``rule``, or None. ``strings=False`` skips the text
    checks (the caller knows no string can hold NUL or a surrogate)."""
    if value is None:
        return None
    if isinstance(value, NotStorable):
        return f"{value.what}; the database cannot store it"
    if rule.kind == "int" and isinstance(value, int) and not isinstance(value, bool):
        assert rule.low is not None and rule.high is not None  # every int rule has its range
        if not rule.low <= value <= rule.high:
            digits = len(str(value)) if abs(value) < 10**40 else "more than 40"
            shown = value if abs(value) < 10**40 else f"an integer of {digits} digits"
            return f"{shown} is out of range for the integer column {rule.column} ({rule.low} to {rule.high})"
    elif rule.kind == "float" and isinstance(value, float):
        if not math.isfinite(value):
            return f"{value} is not a finite number; the database cannot store it"
    elif rule.kind == "text" and isinstance(value, str):
        if rule.length is not None and len(value) > rule.length:
            return f"has {len(value)} characters, more than the {rule.length} the {rule.column} column holds"
        if strings:
            return text_problem(value)
    elif rule.kind == "json":
        return json_problem(value, strings=strings)
    return None


def json_problem(value: Any, *, strings: bool = True) -> str | None:
    """Why ``value`` is not JSON the database's JSON type stores and gives back intact, or None.

    Checks every key and value, iteratively (the parser bounds the depth, see ``max_json_depth``)."""
    stack: list[tuple[Any, str]] = [(value, "")]
    while stack:
        item, path = stack.pop()
        where = f" at {path[1:] if path.startswith('.') else path}" if path else ""
        if isinstance(item, dict):
            for key, child in item.items():
                if not isinstance(key, str):
                    return f"key {key!r}{where} is not text"
                if strings and (problem := text_problem(key)):
                    return f"key '{clean_text(key, 60)}'{where} {problem}"
                stack.append((child, f"{path}.{key}"))
        elif isinstance(item, list):
            stack.extend((child, f"{path}[{i}]") for i, child in enumerate(item))
        elif isinstance(item, str):
            if strings and (problem := text_problem(item)):
                return f"text{where} {problem}"
        elif isinstance(item, float):
            if not math.isfinite(item):
                return f"{item}{where} is not a finite number; JSON cannot hold it"
        elif isinstance(item, NotStorable):
            return f"{item.what}{where}; the database cannot store it"
        elif item is not None and not isinstance(item, (bool, int)):
            return f"a {type(item).__name__}{where} is not a JSON value"
    return None


STAGE = "storable"  # the stage of the problems :func:`check_record` finds (``NormRecord.pending``)


def check_record(record: Any, model: str, *, strings: bool) -> None:
    """Check one record's fields, ``extra`` and references (``NormRecord``) against its table's columns,
    as it is read (its body is then spilled): each problem is kept on the record (``add_pending``) and
    reported by :func:`check_records` in the records' final order (after repeats are dropped).

    Each value the database would refuse is an error located by the model's file, the record's id and the
    field (the column, or the key in ``extra`` it was kept under). References that are not storable text
    are errors too, and are cleared so they are not reported again as missing. ``strings=False``: no
    string of the record can hold NUL or a surrogate (the parser saw none so far, see ``Archive.odd_text``),
    so strings are not scanned, for speed."""
    spec = BY_NAME[model]
    file = spec.files[0]
    values, extra = record.body()
    for name, rule in _checked(model, strings):
        value = values.get(name)
        if value is not None and (problem := value_problem(value, rule, strings=strings)):
            record.add_pending("error", STAGE, file, problem, name)
    if strings:
        # Otherwise extra holds what the parser gave, which is storable JSON: finite numbers only
        # (see archive.Archive._decoder), nesting bounded, no NUL or surrogate (odd_text).
        for key, value in extra.items():
            if problem := text_problem(key):
                record.add_pending("error", STAGE, file, f"field name {problem}", key)
            elif problem := json_problem(value):
                record.add_pending("error", STAGE, file, f"{problem} (kept in extra)", key)
        _check_refs(record, file)


def check_records(records: dict[str, list[Any]], problems: Problems, *, strings: bool) -> None:
    """Report, per model (``records``: model name -> ``NormRecord`` list) in the records' order, a key used
    by two records, an id or generated key longer than its column, and what :func:`check_record` found.
    ``strings``: as there (ids are scanned for NUL and surrogates only then)."""
    for model, rows in records.items():
        spec = BY_NAME[model]
        rules = _rules(TABLES[model])
        file = spec.files[0]
        id_rule, key_rule = rules["source_id"], rules["source_key"]
        assert id_rule.length is not None and key_rule.length is not None  # both are String(n)
        id_length, key_length = id_rule.length, key_rule.length
        keys: set[str] = set()
        for record in rows:
            source_id, source_key = record.source_id, record.source_key
            if source_key in keys:
                problems.error(file, f"two records have the key {source_key!r}", source_id, "id")
            keys.add(source_key)
            if len(source_id) > id_length or strings:  # the cheap test first: this runs per record
                if problem := value_problem(source_id, id_rule):
                    problems.error(file, f"id {problem}", source_id, "id")
                elif source_key != source_id and (problem := value_problem(source_key, key_rule)):
                    problems.error(file, f"generated key {source_key!r}: {problem}", source_id, "id")
            elif len(source_key) > key_length:
                problem = value_problem(source_key, key_rule)
                problems.error(file, f"generated key {source_key[:40]!r}…: {problem}", source_id, "id")
            if record.pending:
                record.report_pending(STAGE, problems)


def _check_refs(record: Any, file: str) -> None:
    for name, target in record.refs.items():
        targets = target if isinstance(target, list) else [target]
        bad = [t for t in targets if t is not None and text_problem(t)]
        for item in bad:
            message = f"reference '{clean_text(item, 60)}' {text_problem(item)}"
            record.add_pending("error", STAGE, file, message, name)
        if bad:
            record.refs[name] = [t for t in targets if t not in bad] if isinstance(target, list) else None


_RULES: dict[str, dict[str, ColumnRule]] = {}


def _rules(table: sa.Table) -> dict[str, ColumnRule]:
    rules = _RULES.get(table.name)
    if rules is None:
        rules = _RULES[table.name] = table_rules(table)
    return rules


_CHECKED: dict[tuple[str, bool], list[tuple[str, ColumnRule]]] = {}


def _checked(model: str, strings: bool) -> list[tuple[str, ColumnRule]]:
    """The record fields of ``model`` whose values :func:`check_record` checks."""
    checked = _CHECKED.get((model, strings))
    if checked is None:
        fields = BY_NAME[model].record.model_fields
        columns = _checked_columns(_rules(TABLES[model]), strings)
        checked = _CHECKED[(model, strings)] = [(name, rule) for name, rule in columns if name in fields]
    return checked


def _checked_columns(rules: dict[str, ColumnRule], strings: bool) -> list[tuple[str, ColumnRule]]:
    """The columns whose values can be refused: numbers and JSON always, text only when strings are
    scanned or the column has a length."""
    wanted: Iterable[tuple[str, ColumnRule]] = (
        (name, rule)
        for name, rule in rules.items()
        if rule.kind in ("int", "float", "json") or (rule.kind == "text" and (strings or rule.length is not None))
    )
    return list(wanted)
