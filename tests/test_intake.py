"""Raw rows (what an adapter reads) -> validated records: every bad cell named, bad rows left out."""

from __future__ import annotations

import datetime as dt

from builders import D
from xlsales.core.intake import read_workbook_tables
from xlsales.core.models import RepStatus, Tier
from xlsales.core.pipeline import compute
from xlsales.core.problems import Problems
from xlsales.core.rulebook import default_tables
from xlsales.demo import demo_tables


def read(tables):
    problems = Problems()
    rules, inputs = read_workbook_tables(tables, dt.date(2026, 6, 30), problems)
    return rules, inputs, problems


def test_bad_cells_are_reported_with_field_and_value_and_rows_left_out():
    tables = {
        **default_tables(),
        "订单": [
            {"row": 2, "订单号": "O1", "签约日期": "2026-03-05", "工号": "E1", "客户编码": "C1", "合同金额": "待定",
             "毛利率": 0.3},
            {"row": 3, "订单号": "O2", "签约日期": "2026-02-30", "工号": "E1", "客户编码": "C1", "合同金额": 100,
             "毛利率": "130%"},
            {"row": 4, "订单号": "O3", "签约日期": dt.datetime(2026, 3, 5), "工号": 1001.0, "客户编码": "C1",
             "合同金额": "1,000.50", "毛利率": "25%"},
        ],
        "客户关系记录": [{"row": 2, "日期": "2026-06-01", "工号": "E1", "客户编码": "C1", "角色": "决策层",
                           "动作编码": "A01", "次数": -1}],
        "业绩目标": [{"row": 2, "年度": 2026, "工号": "E1", "保底目标": "十万", "挑战目标": 10, "3月": "x"}],
    }
    _, inputs, problems = read(tables)
    found = sorted((p.sheet, p.row, p.field, p.value) for p in problems.items)
    assert found == sorted([
        ("订单", 2, "合同金额", "待定"), ("订单", 3, "签约日期", "2026-02-30"), ("订单", 3, "毛利率", "130%"),
        ("客户关系记录", 2, "次数", "-1"), ("业绩目标", 2, "保底目标", "十万"), ("业绩目标", 2, "3月", "x"),
    ])
    messages = {p.field: p.message for p in problems.items}
    assert messages["合同金额"] == "合同金额应为数字"
    assert "是不存在的日期" in messages["签约日期"]
    assert "不能大于 1" in messages["毛利率"]
    [good] = inputs.orders
    assert (good.order_id, good.rep_id, good.amount, good.margin) == ("O3", "1001", D("1000.50"), D("0.25"))
    assert len(inputs.log) == 0


def test_demo_workbook_tables_compute_with_their_planted_errors():
    rules, inputs, problems = read(demo_tables())
    assert rules is not None
    results = compute(inputs, rules, problems)
    errors = [p for p in problems.items if p.is_error]
    assert {(p.sheet, p.field) for p in errors} == {("客户关系记录", "动作编码"), ("客户关系记录", "次数"),
                                                    ("客户关系记录", "客户编码"), ("回款", "订单号")}
    assert len(results.ranking) == 11 and results.forfeitures
    assert any(r.status.value == "暂缓" for r in results.forecast)


def test_same_inputs_same_results():
    def once():
        rules, inputs, problems = read(demo_tables())
        assert rules is not None
        return repr(compute(inputs, rules, problems)), repr(problems.items)

    assert once() == once()


def test_the_order_side_prepared_ahead_gives_the_same_run():
    """A file run prepares the part that needs no log while the log loads (prepare, and the 计算说明
    formatted): the results and the problems, in their order, are those of one compute call; a
    prepared side can be used twice (it is not changed by compute)."""
    from xlsales.core.payouts import format_texts
    from xlsales.core.pipeline import prepare

    rules, inputs, problems = read(demo_tables())
    assert rules is not None
    expected = repr(compute(inputs, rules, problems)), repr(problems.items)

    rules, inputs, early = read(demo_tables())
    assert rules is not None
    side = prepare(inputs, rules)
    format_texts(side.fresh)
    assert all(type(line.explanation) is str for line in side.fresh)
    for _ in range(2):
        problems = Problems()
        problems.extend(early.items)
        assert (repr(compute(inputs, rules, problems, prepared=side)), repr(problems.items)) == expected
    assert any(p.sheet == "客户关系记录" for p in problems.items) and any(p.sheet == "回款" for p in problems.items)


def test_a_rep_with_a_blank_status_counts_as_active_and_is_warned_about():
    tables = {**default_tables(), "销售人员": [
        {"row": 2, "工号": "E1", "姓名": "甲", "状态": "在职"},
        {"row": 3, "工号": "E2", "姓名": "乙"},  # a blank cell: the reader leaves it out
        {"row": 4, "工号": "E3", "姓名": "丙", "状态": "在岗"},  # not a status: an error, not this warning
    ]}
    _, inputs, problems = read(tables)
    assert [r.rep_id for r in inputs.reps if r.status is RepStatus.ACTIVE] == ["E1", "E2"]
    found = [(p.sheet, p.row, p.field, p.is_error) for p in problems.items]
    assert found == [("销售人员", 4, "状态", True), ("销售人员", 3, "状态", False)]
    assert all("在职或离职" in p.message for p in problems.items if not p.is_error)


def test_a_percentage_typed_in_a_money_column_is_an_error_not_a_few_fen():
    """'15%' in 合同金额 would otherwise be 0.15 元 without a word; in 毛利率 it is 0.15, as meant."""
    tables = {
        **default_tables(),
        "订单": [{"row": 2, "订单号": "O1", "签约日期": "2026-03-05", "工号": "E1", "客户编码": "C1", "合同金额": "15%",
                  "毛利率": "28%"},
                 {"row": 3, "订单号": "O2", "签约日期": "2026-03-05", "工号": "E1", "客户编码": "C1", "合同金额": "1,000.50",
                  "毛利率": "28%"}],
        "回款": [{"row": 2, "订单号": "O2", "回款日期": "2026-04-01", "回款金额": "5％"}],
        "业绩目标": [{"row": 2, "年度": 2026, "工号": "E1", "保底目标": "100%", "挑战目标": 10}],
    }
    _, inputs, problems = read(tables)
    errors = sorted((p.sheet, p.row, p.field, p.value) for p in problems.items if p.is_error)
    assert errors == [("业绩目标", 2, "保底目标", "100%"), ("回款", 2, "回款金额", "5％"), ("订单", 2, "合同金额", "15%")]
    assert all("不是百分比" in p.message for p in problems.items if p.is_error)
    assert [(o.order_id, o.amount, o.margin) for o in inputs.orders] == [("O2", D("1000.50"), D("0.28"))]


def test_choices_ignore_surrounding_spaces_and_an_unknown_stance_is_warned_about():
    """"在职 " is 在职 (it dropped the rep and every row that named it); a 立场 that is no tier is a
    warning, since only 反对 counts and a typo of it would otherwise pass as 中立."""
    tables = {**default_tables(),
              "销售人员": [{"row": 2, "工号": "E1", "姓名": "甲", "状态": "在职 "}],
              "客户": [{"row": 2, "客户编码": "C1", "客户名称": "甲", "客户经理": "E1", "立场": "反对的", "自评等级": " 支持"},
                     {"row": 3, "客户编码": "C2", "客户名称": "乙", "客户经理": "E1", "立场": " 反对 "}],
              "商机": [{"row": 2, "商机编码": "P1", "客户编码": "C1", "工号": "E1", "金额": 100, "状态": "赢单 ",
                      "状态日期": "2026-03-01"}]}
    _, inputs, problems = read(tables)
    assert [r.rep_id for r in inputs.reps] == ["E1"] and [o.code for o in inputs.opportunities] == ["P1"]
    assert [(c.code, c.stance, c.claimed_tier) for c in inputs.customers] == [("C1", "反对的", Tier.SUPPORT), ("C2", "反对", None)]
    [warning] = problems.items
    assert (warning.sheet, warning.row, warning.field, warning.value, warning.is_error) == ("客户", 2, "立场", "反对的", False)


def test_a_reference_to_a_row_left_out_for_a_bad_cell_names_that_row_not_a_missing_key():
    """One bad 毛利率 used to make every collection of its order 'unknown' (请核对订单号), sending the
    clerk after the wrong mistake; so did a customer left out for a bad 自评等级, in every sheet that
    names it, and an order left out for that customer, in its collections."""
    tables = {
        **default_tables(),
        "参数": [{"row": 2, "参数": "评估日期", "值": "2026-06-30"}],
        "销售人员": [{"row": 2, "工号": "E1", "姓名": "甲", "状态": "在职"}],
        "客户": [{"row": 2, "客户编码": "C1", "客户名称": "甲", "客户经理": "E1"},
                 {"row": 3, "客户编码": "C2", "客户名称": "乙", "客户经理": "E1", "自评等级": "铁杆客户"}],
        "订单": [{"row": 2, "订单号": "O1", "签约日期": "2026-03-05", "工号": "E1", "客户编码": "C1", "合同金额": 100,
                  "毛利率": "abc"},
                 {"row": 3, "订单号": "O2", "签约日期": "2026-03-05", "工号": "E1", "客户编码": "C2", "合同金额": 100,
                  "毛利率": 0.3}],
        "回款": [{"row": 2, "订单号": "O1", "回款日期": "2026-04-01", "回款金额": 50},
                 {"row": 3, "订单号": "O2", "回款日期": "2026-04-01", "回款金额": 50},
                 {"row": 4, "订单号": "O9", "回款日期": "2026-04-01", "回款金额": 50}],
    }
    rules, inputs, problems = read(tables)
    compute(inputs, rules, problems)
    said = {(p.sheet, p.row, p.field): p.message for p in problems.items if p.is_error}
    assert "“O1”在“订单”表第 2 行，但那一行有错误" in said[("回款", 2, "订单号")]
    assert "“C2”在“客户”表第 3 行，但那一行有错误" in said[("订单", 3, "客户编码")]
    assert "“O2”在“订单”表第 3 行" in said[("回款", 3, "订单号")]
    assert said[("回款", 4, "订单号")] == "订单表里没有订单号“O9”：请核对订单号"  # really missing: as before
