"""The relationship log (客户关系记录) in columnar form.

A big team logs a million actions a year: per-row Python objects would cost seconds, so the log
travels as a polars frame with a fixed schema (one column per LogEntry field, plus `row`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import polars as pl

from xlsales.core.models import LogEntry

LOG_SHEET = "客户关系记录"

LOG_SCHEMA: dict[str, pl.DataType] = {
    "row": pl.Int64(),
    "date": pl.Date(),
    "rep_id": pl.String(),
    "customer": pl.String(),
    "contact": pl.String(),
    "role": pl.String(),
    "action": pl.String(),
    "count": pl.Int64(),
    "approval": pl.String(),
}

# header text of each column, for problems that point at a cell
LOG_HEADERS = {
    name: (field.alias or name) for name, field in LogEntry.model_fields.items() if name in LOG_SCHEMA
}


@dataclass(frozen=True)
class ActivityLog:
    frame: pl.DataFrame

    def __post_init__(self) -> None:
        missing = [c for c in LOG_SCHEMA if c not in self.frame.columns]
        if missing:
            raise ValueError(f"activity log lacks columns {missing}")

    @classmethod
    def from_entries(cls, entries: Iterable[LogEntry]) -> ActivityLog:
        rows = [
            {
                "row": e.row,
                "date": e.date,
                "rep_id": e.rep_id,
                "customer": e.customer,
                "contact": e.contact,
                "role": e.role,
                "action": e.action,
                "count": e.count,
                "approval": e.approval,
            }
            for e in entries
        ]
        return cls(pl.DataFrame(rows, schema=LOG_SCHEMA))

    @classmethod
    def empty(cls) -> ActivityLog:
        return cls(pl.DataFrame(schema=LOG_SCHEMA))

    def __len__(self) -> int:
        return self.frame.height
