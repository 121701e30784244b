"""A realistic demo team as raw sheet rows: 12 reps, 60 customers, a year of activity, orders,
collections, a lost must-win account, a paused opportunity and a few planted data errors.

Deterministic (seeded), so the demo and the tests built on it give the same numbers every time.
"""

from __future__ import annotations

import datetime as dt
import random
from decimal import Decimal
from typing import Any

from pydantic import BaseModel

from xlsales.core.activity import LOG_SHEET
from xlsales.core.intake import read_workbook_tables
from xlsales.core.payouts import PAYOUT_SHEET, LedgerEntry, LineText, PayStatus
from xlsales.core.pipeline import compute
from xlsales.core.problems import Problems
from xlsales.core.ranking import HISTORY_SHEET, HistoryEntry
from xlsales.core.rulebook import PARAM_SHEET, default_tables

DEMO_YEAR = 2026
DEMO_DATE = dt.date(2026, 11, 30)

_NAMES = ["王建国", "李思远", "张晓梅", "刘志强", "陈静怡", "杨帆", "赵一鸣", "黄丽娟", "周浩然", "吴婷",
          "徐磊", "孙悦"]
_REGIONS = ["华北", "华东", "华南", "西南"]
_CITIES = ["北京", "上海", "广州", "深圳", "成都", "武汉", "南京", "杭州", "西安", "天津", "重庆", "苏州"]
_TRADES = ["电力", "钢铁", "港口", "能源", "轨道交通", "水务", "医药", "汽车", "银行", "航空"]
_ROLES = ["决策层", "管理层", "技术/采购层", "秘书/助理"]
_CONTACTS = ["总经理", "副总", "信息中心主任", "采购经理", "技术主管", "总经理秘书"]


_WATCHED = frozenset({0, 5, 11, 32, 41})  # C001, C006, C012, C033, C042: 重点 (创始人关注)


def demo_tables(with_errors: bool = True) -> dict[str, list[dict[str, Any]]]:
    rng = random.Random(20261130)
    tables: dict[str, list[dict[str, Any]]] = {k: list(v) for k, v in default_tables().items()}
    tables[PARAM_SHEET] = _rows([
        {"参数": "年度", "值": DEMO_YEAR},
        {"参数": "评估日期", "值": DEMO_DATE},
        {"参数": "公司年度目标", "值": 600_000_000},
        {"参数": "排名奖", "值": 5000},
    ])
    reps = [{"工号": f"E{i + 1:03d}", "姓名": name, "区域": _REGIONS[i % 4], "状态": "在职"}
            for i, name in enumerate(_NAMES)]
    reps[11]["状态"] = "离职"
    tables["销售人员"] = _rows(reps)
    active = [r["工号"] for r in reps if r["状态"] == "在职"]

    customers = []
    for i in range(60):
        owner = active[i % len(active)]
        customers.append({
            "客户编码": f"C{i + 1:03d}",
            "客户名称": f"{_CITIES[i % 12]}{_TRADES[(i * 7) % 10]}{'集团' if i % 3 else '股份公司'}",
            "客户经理": owner,
            "技术经理": active[(i + 3) % len(active)],
            "服务经理": active[(i + 5) % len(active)] if i % 4 else None,
            "必保": "是" if i % 8 == 0 else "否",
            "战略突破奖": 1_000_000 if i in (5, 17, 29) else None,
            "立场": "反对" if i == 41 else None,
            "自评等级": ["铁杆", "支持", "中立", None][i % 4],
            # the founder's watchlist: two must-wins (C033 is lost below), a breakthrough account,
            # the one against us and an ordinary account
            "重点": "是" if i in _WATCHED else None,
        })
    tables["客户"] = _rows(customers)

    # how engaged each rep is: the top reps work their accounts hard, two only drop by
    effort = {rep: 0.25 + 0.75 * ((len(active) - k) / len(active)) for k, rep in enumerate(active)}
    effort[active[-1]] = effort[active[-2]] = 0.08
    actions = [a["动作编码"] for a in tables["动作库"]]
    weights = [20, 25, 8, 6, 3, 2, 3, 2, 3, 1, 3, 1, 0.3]
    log: list[dict[str, Any]] = []
    start = dt.date(DEMO_YEAR - 1, 12, 1)
    for customer in customers:
        team = [customer["客户经理"], customer["技术经理"]]
        warmth = rng.choice((0.15, 0.3, 0.5, 0.8, 1.0))  # some accounts are courted, others barely touched
        mix = weights if warmth < 0.8 else [5, 10, 8, 6, 6, 5, 6, 5, 5, 3, 3, 1, 0.2]
        for day_offset in range(0, (DEMO_DATE - start).days + 1, 3):
            for rep in team:
                if rng.random() > effort[rep] * 0.16 * warmth:
                    continue
                action = rng.choices(actions, mix)[0]
                log.append({
                    "日期": start + dt.timedelta(days=day_offset), "工号": rep, "客户编码": customer["客户编码"],
                    "联系人": rng.choice(_CONTACTS), "角色": rng.choice(_ROLES), "动作编码": action,
                    "次数": 1 if rng.random() < 0.9 else 2,
                    "审批状态": ("已批准" if rng.random() < 0.8 else "待审批") if action == "A11" else None,
                    "备注": None,
                })
    log.sort(key=lambda r: (r["日期"], r["工号"], r["客户编码"]))
    tables[LOG_SHEET] = _rows(log)

    targets = []
    for k, rep in enumerate(active):
        floor = Decimal(60_000_000 + 10_000_000 * (k % 6))
        row: dict[str, Any] = {"年度": DEMO_YEAR, "工号": rep, "保底目标": floor, "挑战目标": floor * Decimal("1.4"),
                               "自报目标": floor * Decimal("1.1") if k % 3 else None}
        if k == 0:  # a seasonal split: quiet first quarter, strong fourth
            split = [Decimal(v) * floor / 100 for v in (4, 4, 6, 8, 8, 9, 9, 9, 10, 10, 11, 12)]
            row.update({f"{m}月": v for m, v in enumerate(split, 1)})
        targets.append(row)
    tables["业绩目标"] = _rows(targets)

    orders, collections, progress = [], [], []
    n = 0
    for k, rep in enumerate(active):
        mine = [c for c in customers if c["客户经理"] == rep]
        for j in range(rng.randint(2, 5) if k < 9 else 1):
            n += 1
            customer = mine[j % len(mine)]
            signed = dt.date(DEMO_YEAR, rng.randint(1, 10), rng.randint(1, 28))
            amount = Decimal(rng.randrange(50, 600)) * 100_000
            margin = Decimal(rng.randrange(16, 36)) / 100
            done = signed + dt.timedelta(days=rng.randint(60, 200))
            order_id = f"SO{DEMO_YEAR}{n:03d}"
            orders.append({"订单号": order_id, "签约日期": signed, "工号": rep, "客户编码": customer["客户编码"],
                           "合同金额": amount, "毛利率": margin, "完工日期": done if done <= DEMO_DATE else None})
            paid_share = Decimal(0)
            day = signed
            for share in (Decimal("0.3"), Decimal("0.4"), Decimal("0.3")):
                day = day + dt.timedelta(days=rng.randint(20, 90))
                if day > DEMO_DATE:
                    break
                paid_share += share
                collections.append({"订单号": order_id, "回款日期": day, "回款金额": amount * share})
            for pct in (Decimal("0.3"), Decimal("0.7"), Decimal(1)):
                day = signed + dt.timedelta(days=int(90 * pct))
                if day <= DEMO_DATE:
                    progress.append({"订单号": order_id, "日期": day, "累计完工比例": pct})
    tables["订单"] = _rows(orders)
    tables["回款"] = _rows(collections)
    tables["进度"] = _rows(progress)

    opportunities = []
    for i, customer in enumerate(customers[:40]):
        status = ["跟进中", "跟进中", "赢单", "跟进中", "暂缓"][i % 5] if i % 5 != 4 or i == 4 else "跟进中"
        row = {"商机编码": f"OP{i + 1:03d}", "客户编码": customer["客户编码"], "工号": customer["客户经理"],
               "金额": Decimal(rng.randrange(30, 1200)) * 100_000, "状态": status,
               "状态日期": dt.date(DEMO_YEAR, rng.randint(1, 11), rng.randint(1, 28)) if status != "跟进中" else None,
               "预计签约月": f"{DEMO_YEAR + (i % 3 == 0)}-{(i % 12) + 1:02d}",
               "暂缓原因": "客户领导更换，项目重新立项" if status == "暂缓" else None}
        opportunities.append(row)
    # the lost must-win account: C033 (must-win, owned by the 9th rep) went to a competitor
    lost = next(c for c in customers if c["必保"] == "是" and c["客户编码"] == "C033")
    opportunities.append({"商机编码": "OP099", "客户编码": lost["客户编码"], "工号": lost["客户经理"],
                          "金额": Decimal(80_000_000), "状态": "丢单", "状态日期": dt.date(DEMO_YEAR, 9, 18),
                          "预计签约月": f"{DEMO_YEAR}-09", "暂缓原因": None})
    tables["商机"] = _rows(opportunities)

    # 5词评价: the managers' quarterly ratings of the active reps (Q2 and Q3, some Q1); 3C清单 of four key accounts
    words = ("激情", "自信", "坚持", "专业", "真诚")
    ratings = []
    for quarter in (1, 2, 3):
        for i, rep_id in enumerate(active):
            if quarter == 1 and i % 3:
                continue
            trend = (quarter - 2) * (i % 3 - 1)  # some reps improve, some slip, some hold
            scores = [max(1, min(5, 3 + (i + k) % 3 - 1 + trend * (k % 2))) for k in range(len(words))]
            ratings.append({"季度": f"{DEMO_YEAR}-Q{quarter}", "工号": rep_id, **dict(zip(words, scores, strict=True)),
                            "评价人": "区域经理", "备注": None})
    tables["5词评价"] = _rows(ratings)
    keys = [c["客户编码"] for c in customers if c["必保"] == "是"][:4]
    marks = [("是", "是", "是", "是"), ("是", "是", "否", "是"), ("是", "否", "否", None), ("否", "否", "否", "否")]
    tables["3C清单"] = _rows([{"客户编码": code, **dict(zip(("组织架构", "决策链", "评估委员会", "竞争对手"), m, strict=True)),
                               "备注": None} for code, m in zip(keys, marks, strict=True)])

    _simulate_earlier_months(tables)
    if with_errors:
        _plant_errors(tables)
    return tables


def as_raw(record: object, model: type[BaseModel]) -> dict[str, Any]:
    """A result row as the raw row its sheet would hold (headers from the model's aliases)."""
    row = {f.alias: getattr(record, name) for name, f in model.model_fields.items() if f.alias}
    return {k: str(v) if isinstance(v, LineText) else v for k, v in row.items()}


def _simulate_earlier_months(tables: dict[str, list[dict[str, Any]]]) -> None:
    """Give the demo a past: the ranking of each earlier month (so streaks show) and a ledger in
    which finance has paid what fell due by the end of last month, mostly on time."""
    history: list[dict[str, Any]] = []
    results = None
    for month in range(1, DEMO_DATE.month):
        month_end = dt.date(DEMO_YEAR, month + 1, 1) - dt.timedelta(days=1)
        params = [r for r in tables[PARAM_SHEET] if r["参数"] != "评估日期"] + [{"row": 99, "参数": "评估日期", "值": month_end}]
        problems = Problems()
        book, inputs = read_workbook_tables({**tables, PARAM_SHEET: params, HISTORY_SHEET: _rows(history)},
                                            month_end, problems)
        assert book is not None, problems.items
        results = compute(inputs, book, problems)
        history = [as_raw(r, HistoryEntry) for r in results.history]
    tables[HISTORY_SHEET] = _rows(history)
    if results is None:
        return
    ledger = []
    for i, line in enumerate(results.payouts):
        row = as_raw(line, LedgerEntry)
        if line.status is not PayStatus.CANCELLED and line.due_date <= results.book.evaluation_date:
            row["实发日期"] = line.due_date + dt.timedelta(days=4 if i % 7 == 0 else 0)
        ledger.append(row)
    tables[PAYOUT_SHEET] = _rows(ledger)


def _plant_errors(tables: dict[str, list[dict[str, Any]]]) -> None:
    """The mistakes a rep on a deadline makes: a made-up action code, text in a number cell, a
    customer code that does not exist, a collection for an order that was never signed."""
    log = tables[LOG_SHEET]
    log[10] = {**log[10], "动作编码": "A99"}
    log[20] = {**log[20], "次数": "两次"}
    log[30] = {**log[30], "客户编码": "C999"}
    tables["回款"].append({"row": len(tables["回款"]) + 2, "订单号": "SO-不存在", "回款日期": dt.date(DEMO_YEAR, 6, 1),
                         "回款金额": 100_000})


def _rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"row": i, **r} for i, r in enumerate(rows, start=2)]
