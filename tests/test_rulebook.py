"""The rulebook: parameters and rule tables validated as a whole."""

from __future__ import annotations

import datetime as dt

from builders import D, book
from xlsales.core.problems import Level, Problems
from xlsales.core.rulebook import PARAMETER_NAMES, Parameters, build_rulebook, default_tables


def build(**sheets):
    raw = default_tables()
    for sheet, rows in sheets.items():
        raw[sheet] = [{"row": i, **r} for i, r in enumerate(rows, 2)]
    problems = Problems()
    return build_rulebook(raw, dt.date(2026, 6, 30), problems), problems


def test_defaults_are_the_rules_md_defaults():
    rules = book()
    p = rules.params
    assert (p.window_months, p.score_cap, p.base_rate, p.margin_red_line) == (12, 100, D("0.02"), D("0.20"))
    assert (p.margin_bonus_low, p.margin_bonus_high, p.margin_bonus_share, p.payout_delay_days) == (D("0.25"), D("0.30"), 1, 1)
    assert (p.top_share, p.bottom_share, p.performance_weight, p.relationship_weight) == (D("0.3"), D("0.15"), D("0.6"), D("0.4"))
    assert (p.attainment_cap, p.ranking_award, p.company_target) == (2, 0, None)
    assert rules.roles == {"决策层": D("1.5"), "管理层": D("1.2"), "技术/采购层": D(1), "秘书/助理": D("0.6")}
    assert [(s.stage.value, s.share) for s in rules.stages] == [("签约", D("0.5")), ("回款", D("0.5"))]
    assert rules.year == 2026


def test_every_parameter_has_a_chinese_name_default_and_help():
    assert len(PARAMETER_NAMES) == 18
    for field in Parameters.model_fields.values():
        assert field.alias and field.description


def test_all_problems_at_once_each_naming_its_row():
    rules, problems = build(
        参数=[{"参数": "基础提成率", "值": "abc"}, {"参数": "提成比例", "值": 1}, {"参数": "毛利红线", "值": 2}],
        提成档位=[{"起点": 0, "倍数": 1}, {"起点": "保底", "倍数": 2}, {"起点": "保底", "倍数": 3}],
        发放阶段=[{"阶段": "签约", "比例": "0.5"}, {"阶段": "回款", "比例": "0.4"}],
        角色系数=[{"角色": "决策层", "系数": 0}],
    )
    assert rules is None
    where = sorted((p.sheet, p.row or 0) for p in problems.items)
    assert where == sorted([("参数", 2), ("参数", 3), ("参数", 4), ("提成档位", 4), ("发放阶段", 0), ("角色系数", 0), ("角色系数", 2)])
    assert all(p.is_error for p in problems.items)


def test_bands_must_start_at_zero_and_stages_must_add_to_one():
    rules, problems = build(提成档位=[{"起点": "保底", "倍数": 2}], 发放阶段=[{"阶段": "签约", "比例": 1}, {"阶段": "付款", "比例": 0}])
    assert rules is None
    messages = " ".join(p.message for p in problems.items)
    assert "起点为 0" in messages and "阶段应为" in messages


def test_tier_table_checks():
    rules, problems = build(分级规则=[
        {"等级": "铁杆", "最低关系分": 40, "必备指标": "参观公司", "赢单概率": 0.5},
        {"等级": "支持", "最低关系分": 50, "必备指标": "喝酒", "赢单概率": 0.8},
        {"等级": "中立", "赢单概率": 0.3},
    ])
    assert rules is None
    messages = [p.message for p in problems.items]
    assert any("缺少“反对”" in m for m in messages)
    assert any("喝酒" in m for m in messages)
    assert any("赢单概率高于" in m for m in messages)
    assert any("低于“支持”" in m for m in messages)


def test_a_tier_row_left_out_for_a_bad_cell_is_not_also_called_missing():
    rules, problems = build(分级规则=[
        {"等级": "铁杆", "最低关系分": 80, "必备指标": "参观公司", "赢单概率": 90},  # 90, not 0.9
        {"等级": "支持", "最低关系分": 50, "必备指标": "参观公司", "赢单概率": 0.8},
        {"等级": "中立", "赢单概率": 0.3},
    ])
    assert rules is None
    found = [(p.row, p.field, p.message) for p in problems.items]
    assert [(row, field) for row, field, _ in found] == [(2, "赢单概率"), (None, "等级")]
    assert "不能大于 1" in found[0][2] and "缺少“反对”" in found[1][2]  # 反对 is really missing; 铁杆 is not


def test_an_indicator_no_action_provides_is_a_warning_and_the_run_goes_on():
    """A team's own small catalog with the default tier table: the tier that needs an indicator no
    action gives is out of reach, which is said, but nothing stops the run."""
    rules, problems = build(分级规则=[
        {"等级": "铁杆", "最低关系分": 80, "必备指标": "参观公司、喝酒", "赢单概率": 0.9},
        {"等级": "支持", "最低关系分": 50, "必备指标": "参观公司", "赢单概率": 0.8},
        {"等级": "中立", "赢单概率": 0.3}, {"等级": "反对", "赢单概率": 0.05},
    ])
    assert rules is not None
    [warning] = problems.items
    assert (warning.level, warning.sheet, warning.field, warning.value) == (Level.WARNING, "分级规则", "必备指标", "喝酒")
    assert "铁杆" in warning.message


def test_percent_text_and_blank_parameters():
    rules = book(基础提成率="3%", 排名奖="")
    assert rules.params.base_rate == D("0.03") and rules.params.ranking_award == 0


def test_plan_year_and_evaluation_date_must_agree():
    _, problems = build(参数=[{"参数": "年度", "值": 2025}, {"参数": "评估日期", "值": "2026-01-05"}])
    assert any("不在计划年度" in p.message for p in problems.items)
    rules, _ = build(参数=[{"参数": "年度", "值": 2025}])
    assert rules is not None and rules.evaluation_date == dt.date(2025, 12, 31)
