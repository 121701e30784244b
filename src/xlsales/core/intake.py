"""From raw sheet rows (header text -> cell value) to validated records and a rulebook.

Every adapter (files, live Excel, tests) hands the core the same thing: one list of raw rows per
sheet, each row a mapping of header text to cell value plus "row", its sheet row number. The big
relationship log may come ready as an ActivityLog instead (the fast file reader builds it
columnar).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from xlsales.core.accounts import THREE_C_SHEET
from xlsales.core.activity import LOG_SHEET, ActivityLog
from xlsales.core.models import (
    CUSTOMER_SHEET,
    ORDER_SHEET,
    REP_SHEET,
    Collection,
    Customer,
    FiveWordRating,
    LogEntry,
    Opportunity,
    Order,
    Progress,
    Rep,
    Target,
    ThreeCCheck,
    Tier,
    parse_text,
)
from xlsales.core.payouts import COLLECTION_SHEET, PAYOUT_SHEET, PROGRESS_SHEET, LedgerEntry
from xlsales.core.people import FIVE_WORD_SHEET
from xlsales.core.pipeline import Inputs
from xlsales.core.problems import Problems, Rejected
from xlsales.core.ranking import HISTORY_SHEET, HistoryEntry
from xlsales.core.rulebook import Rulebook, build_rulebook
from xlsales.core.targets import TARGET_SHEET
from xlsales.core.tiers import OPPORTUNITY_SHEET
from xlsales.core.validation import RawRow, validate_rows

Tables = Mapping[str, list[RawRow]]

# input sheets with their record model (the log is handled apart: it may arrive columnar)
RECORD_SHEETS: dict[str, Any] = {
    REP_SHEET: Rep,
    CUSTOMER_SHEET: Customer,
    TARGET_SHEET: Target,
    OPPORTUNITY_SHEET: Opportunity,
    ORDER_SHEET: Order,
    COLLECTION_SHEET: Collection,
    PROGRESS_SHEET: Progress,
    PAYOUT_SHEET: LedgerEntry,
    HISTORY_SHEET: HistoryEntry,
    FIVE_WORD_SHEET: FiveWordRating,  # optional
    THREE_C_SHEET: ThreeCCheck,  # optional
}


def read_inputs(tables: Tables, problems: Problems, log: ActivityLog | None = None) -> Inputs:
    """Validate every input row; bad rows are reported field by field and left out."""
    records = {sheet: validate_rows(model, sheet, tables.get(sheet, []), problems)
               for sheet, model in RECORD_SHEETS.items()}
    _warn_blank_status(tables.get(REP_SHEET, []), {rep.row for rep in records[REP_SHEET]}, problems)
    _warn_unknown_stance(tables.get(CUSTOMER_SHEET, []), {c.row for c in records[CUSTOMER_SHEET]}, problems)
    if log is None:
        entries = validate_rows(LogEntry, LOG_SHEET, tables.get(LOG_SHEET, []), problems)
        log = ActivityLog.from_entries(entries)
    rejected = Rejected({sheet: _left_out(tables.get(sheet, []), records[sheet], key) for sheet, key in KEYS.items()})
    return Inputs(
        reps=records[REP_SHEET], customers=records[CUSTOMER_SHEET], log=log, targets=records[TARGET_SHEET],
        opportunities=records[OPPORTUNITY_SHEET], orders=records[ORDER_SHEET],
        collections=records[COLLECTION_SHEET], progress=records[PROGRESS_SHEET],
        ledger=records[PAYOUT_SHEET], history=records[HISTORY_SHEET],
        five_words=records[FIVE_WORD_SHEET], three_c=records[THREE_C_SHEET], rejected=rejected,
    )


# the sheets other sheets refer to, by their key column
KEYS = {REP_SHEET: "工号", CUSTOMER_SHEET: "客户编码", ORDER_SHEET: "订单号"}


def _left_out(rows: list[RawRow], records: list[Any], header: str) -> dict[str, int | None]:
    """The keys of the rows validation left out (a bad cell), with the first such row."""
    taken = {record.row for record in records}
    out: dict[str, int | None] = {}
    for raw in rows:
        key = parse_text(raw.get(header)) if raw.get("row") not in taken else None
        if isinstance(key, str):
            out.setdefault(key, raw.get("row"))
    return out


def _warn_blank_status(rows: list[RawRow], taken: set[int | None], problems: Problems) -> None:
    """A rep (of the rows `taken`) whose 状态 is blank counts as 在职, the model's default, and is
    ranked only because of that default: the manager is told, so that a rep who has left is not
    ranked because of a gap."""
    for raw in rows:
        status, rep_id = raw.get("状态"), raw.get("工号")
        if raw.get("row") in taken and (status is None or not str(status).strip()):
            problems.warn(REP_SHEET, raw.get("row"), "状态", "", f"工号“{rep_id}”的状态为空，按在职处理（参加排名）：请填写在职或离职")


def _warn_unknown_stance(rows: list[RawRow], taken: set[int | None], problems: Problems) -> None:
    """立场 counts only when it is 反对 (rules §2). Text that is not one of the four tiers is most
    likely a typo of it ("反对的"), so the manager is told rather than left with a 中立 customer."""
    tiers = [t.value for t in Tier]
    for raw in rows:
        stance = raw.get("立场")
        text = str(stance).strip() if stance is not None else ""
        if raw.get("row") in taken and text and text not in tiers:
            problems.warn(CUSTOMER_SHEET, raw.get("row"), "立场", text,
                          f"立场“{text}”不是{'、'.join(tiers)}之一，按未填处理（只有“反对”影响分级）：请改正或留空")


def read_workbook_tables(tables: Tables, today: dt.date, problems: Problems,
                         log: ActivityLog | None = None) -> tuple[Rulebook | None, Inputs]:
    book = build_rulebook(tables, today, problems)
    return book, read_inputs(tables, problems, log)
