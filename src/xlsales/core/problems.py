"""Errors are data: every problem names its sheet, row and field, the value, and what to fix."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import NamedTuple


class Level(StrEnum):
    ERROR = "错误"
    WARNING = "警告"


class Problem(NamedTuple):
    """One finding (a NamedTuple: a big log can yield a hundred thousand warnings).

    `row` is the sheet row (1-based, header is row 1) and `field` the header name, so an adapter
    can turn them into an A1 cell; both are None for whole-sheet findings."""

    level: Level
    sheet: str
    row: int | None
    field: str | None
    value: str
    message: str

    @property
    def is_error(self) -> bool:
        return self.level == Level.ERROR


class Problems:
    """An append-only collector used by every stage of the pipeline."""

    def __init__(self) -> None:
        self.items: list[Problem] = []

    def error(self, sheet: str, row: int | None, field: str | None, value: object, message: str) -> None:
        self.items.append(Problem(Level.ERROR, sheet, row, field, _show(value), message))

    def warn(self, sheet: str, row: int | None, field: str | None, value: object, message: str) -> None:
        self.items.append(Problem(Level.WARNING, sheet, row, field, _show(value), message))

    def warn_rows(self, sheet: str, field: str, rows: Iterable[tuple[int, str | None, str]]) -> None:
        """Many warnings of one sheet and field at once: (row, value as text or None, message)."""
        warning = Level.WARNING
        self.items.extend([Problem(warning, sheet, row, field, value or "", message) for row, value, message in rows])

    def extend(self, problems: list[Problem]) -> None:
        self.items.extend(problems)

    @property
    def has_errors(self) -> bool:
        return any(p.is_error for p in self.items)

    def __len__(self) -> int:
        return len(self.items)


@dataclass(frozen=True)
class Rejected:
    """The keys (工号, 客户编码, 订单号) of the rows left out for a bad cell, by sheet, with their row:
    a reference to one of them is not to a missing record, and saying "no such 订单号" would send the
    user looking for the wrong mistake (one bad 毛利率 made every collection of its order "unknown")."""

    rows: Mapping[str, Mapping[str, int | None]] = field(default_factory=dict)

    def with_rows(self, sheet: str, more: Mapping[str, int | None]) -> Rejected:
        """These rejected keys and `more` of `sheet` (rows its own checks left out)."""
        return Rejected({**self.rows, sheet: {**more, **self.rows.get(sheet, {})}}) if more else self

    def message(self, sheet: str, value: object, otherwise: str) -> str:
        """What to say about a reference to `value` that `sheet` does not hold."""
        found = self.rows.get(sheet, {})
        if not isinstance(value, str) or value not in found:
            return otherwise
        row = found[value]
        where = f"“{sheet}”表第 {row} 行" if row is not None else f"“{sheet}”表"
        return f"“{value}”在{where}，但那一行有错误、没有计算，这一行也就不能计算：请先修正{where}"


def _show(value: object) -> str:
    if value is None:
        return ""
    return str(value)
