"""Readable terminal tables of a run's results (for `xlsales demo` and the command line)."""

from __future__ import annotations

from collections import Counter
from decimal import Decimal

from rich.console import Console
from rich.table import Table

from xlsales.core.money import pct, yuan
from xlsales.core.payouts import PayStatus
from xlsales.core.pipeline import Results
from xlsales.core.problems import Problem
from xlsales.core.ranking import Group

_STATUS_STYLE = {PayStatus.OVERDUE: "red", PayStatus.CANCELLED: "dim"}
_GROUP_STYLE = {Group.TOP: "green", Group.MIDDLE: "", Group.BOTTOM: "red"}


def _rate(value: Decimal | None) -> str:
    return "" if value is None else pct(value, 1)


def print_results(results: Results, problems: list[Problem], console: Console | None = None,
                  payout_rows: int = 25) -> None:
    if console is None:
        console = Console()
        if not console.is_terminal:  # piped or in CI: wide enough that no column is cut
            console = Console(width=180)
    book = results.book
    console.rule(f"xlsales · {book.year} 年 · 评估日期 {book.evaluation_date.isoformat()}")

    ranking = Table(title=f"月度排名 {results.ranking[0].month if results.ranking else ''}")
    for header in ("排名", "工号", "姓名", "业绩完成率", "月度关系得分", "综合得分", "分组", "连续垫底月数"):
        ranking.add_column(header, justify="right" if header in ("排名", "综合得分", "月度关系得分") else "left")
    for r in results.ranking:
        ranking.add_row(str(r.rank), r.rep_id, r.name, _rate(r.attainment), f"{r.relationship:f}", f"{r.score:f}",
                        r.group.value, f"{r.bottom_streak}{' 需帮扶' if r.needs_help else ''}",
                        style=_GROUP_STYLE[r.group])
    console.print(ranking)

    tiers = Table(title="客户关系评分（前 15 个，按关系分）")
    for header in ("客户编码", "客户名称", "客户经理", "关系分", "等级", "赢单概率", "缺少指标", "提示"):
        tiers.add_column(header)
    for c in sorted(results.ratings, key=lambda c: (-c.score, c.code))[:15]:
        tiers.add_row(c.code, c.name, c.account_manager or "", f"{c.score:f}", c.tier.value, _rate(c.probability),
                      "、".join(sorted(c.missing)), "；".join(c.hints))
    console.print(tiers)
    counts = Counter(r.tier.value for r in results.ratings)
    console.print("等级分布：" + "  ".join(f"{k} {v}" for k, v in counts.items()))

    open_lines = [x for x in results.payouts if x.status is not PayStatus.PAID]
    payouts = Table(title=f"提成发放表：未发、逾期、已取消与追回（{len(open_lines)} 行，共 {len(results.payouts)} 行；"
                          f"显示前 {min(payout_rows, len(open_lines))} 行）")
    for header in ("工号", "订单号", "项目", "阶段", "事件日期", "应发日期", "金额", "状态", "计算说明"):
        payouts.add_column(header, justify="right" if header == "金额" else "left",
                           overflow="fold", max_width=60 if header == "计算说明" else None)
    for line in open_lines[:payout_rows]:
        payouts.add_row(line.rep_id, line.order_id or "", line.item.value, line.stage, line.event_date.isoformat(),
                        line.due_date.isoformat(), yuan(line.amount), line.status.value, str(line.explanation),
                        style=_STATUS_STYLE.get(line.status, ""))
    console.print(payouts)

    summary = Table(title="提成汇总")
    for header in ("工号", "姓名", "年度订单额", "保底目标", "完成率", "应发合计", "已发合计", "追回合计"):
        summary.add_column(header, justify="left" if header in ("工号", "姓名") else "right")
    for s in results.summary:
        summary.add_row(s.rep_id, s.name, yuan(s.orders_total), yuan(s.floor) if s.floor is not None else "",
                        _rate(s.attainment), yuan(s.due_total), yuan(s.paid_total), yuan(s.clawback_total))
    console.print(summary)
    if results.on_time:
        console.print("发放及时率（按应发日期所在月）：" + "  ".join(
            f"{r.month} {r.on_time}/{r.due} {_rate(r.rate)}" for r in results.on_time[-6:]))
    for f in results.forfeitures:
        console.print(f"[red]必保丢单：{f.rep_id} {f.reason}[/red]")

    errors = sum(p.is_error for p in problems)
    console.print(f"校验结果：{errors} 个错误，{len(problems) - errors} 个警告")
    for p in [p for p in problems if p.is_error][:10]:
        where = f"{p.sheet}!{p.field or ''}{'' if p.row is None else ' 第' + str(p.row) + '行'}"
        console.print(f"  [red]{p.level.value}[/red] {where}：{p.message}")
