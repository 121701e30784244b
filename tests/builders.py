"""Small builders for core inputs, so each rule's test states only the numbers that matter."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from xlsales.core.activity import ActivityLog
from xlsales.core.models import Collection, Customer, LogEntry, Opportunity, Order, Progress, Rep, Target
from xlsales.core.pipeline import Inputs, Results, compute
from xlsales.core.problems import Problems
from xlsales.core.rulebook import Rulebook, build_rulebook, default_tables

D = Decimal
EVAL = dt.date(2026, 6, 30)


def day(text: str) -> dt.date:
    return dt.date.fromisoformat(text)


def book(evaluation: dt.date = EVAL, tables: dict[str, list[dict[str, Any]]] | None = None, **params: Any) -> Rulebook:
    """The default rulebook with overrides: parameters by Chinese name, rule tables by sheet name."""
    raw = default_tables()
    raw["参数"] = [{"row": i, "参数": k, "值": v} for i, (k, v) in enumerate({"评估日期": evaluation, **params}.items(), 2)]
    for sheet, rows in (tables or {}).items():
        raw[sheet] = [{"row": i, **r} for i, r in enumerate(rows, 2)]
    problems = Problems()
    result = build_rulebook(raw, evaluation, problems)
    assert result is not None, problems.items
    return result


def rep(rep_id: str, name: str | None = None, status: str = "在职") -> Rep:
    return Rep.model_validate({"工号": rep_id, "姓名": name or rep_id, "状态": status})


def customer(code: str, manager: str | None = "E1", **extra: Any) -> Customer:
    return Customer.model_validate({"客户编码": code, "客户名称": f"客户{code}", "客户经理": manager, **extra})


def target(rep_id: str, floor: Any, challenge: Any = None, year: int = 2026, row: int | None = None, **extra: Any) -> Target:
    return Target.from_row({"年度": year, "工号": rep_id, "保底目标": floor,
                            "挑战目标": challenge if challenge is not None else floor, **extra}, row)


def order(order_id: str, signed: str, amount: Any, margin: Any = "0.25", rep_id: str = "E1", customer_code: str = "C1",
          completed: str | None = None, row: int | None = None) -> Order:
    return Order.model_validate({"订单号": order_id, "签约日期": signed, "工号": rep_id, "客户编码": customer_code,
                                 "合同金额": amount, "毛利率": margin, "完工日期": completed, "row": row})


def collection(order_id: str, when: str, amount: Any, row: int | None = None) -> Collection:
    return Collection.model_validate({"订单号": order_id, "回款日期": when, "回款金额": amount, "row": row})


def progress(order_id: str, when: str, share: Any) -> Progress:
    return Progress.model_validate({"订单号": order_id, "日期": when, "累计完工比例": share})


def opportunity(code: str, customer_code: str, status: str, amount: Any = 1_000_000, rep_id: str = "E1",
                when: str | None = None, reason: str | None = None) -> Opportunity:
    return Opportunity.model_validate({"商机编码": code, "客户编码": customer_code, "工号": rep_id, "金额": amount,
                                       "状态": status, "状态日期": when, "暂缓原因": reason})


def entry(when: str, action: str, rep_id: str = "E1", customer_code: str = "C1", role: str = "技术/采购层",
          count: int = 1, approval: str | None = None, row: int | None = None) -> LogEntry:
    return LogEntry.model_validate({"日期": when, "工号": rep_id, "客户编码": customer_code, "角色": role,
                                    "动作编码": action, "次数": count, "审批状态": approval, "row": row})


def log(*entries: LogEntry) -> ActivityLog:
    numbered = [e if e.row is not None else e.model_copy(update={"row": i}) for i, e in enumerate(entries, 2)]
    return ActivityLog.from_entries(numbered)


def run(inputs: Inputs, rules: Rulebook | None = None) -> tuple[Results, Problems]:
    problems = Problems()
    return compute(inputs, rules or book(), problems), problems


def team(*rep_ids: str, floor: Any = 10_000_000) -> tuple[list[Rep], list[Target]]:
    return [rep(r) for r in rep_ids], [target(r, floor) for r in rep_ids]
