"""5词评价 → 5词汇总 (core.people): exact averages, the trend per rep, every kind of bad input by cell."""

from __future__ import annotations

from decimal import Decimal

import openpyxl
import pytest

from builders import rep, run
from test_cli import golden_tables, records, sheet_rows
from xlsales.adapters.sheets import EXTRA_OUTPUT_COLUMNS, FIVE_WORD_SUMMARY_SHEET, write_tables
from xlsales.adapters.xlsx_reader import read_workbook
from xlsales.cli import main
from xlsales.core.intake import read_inputs
from xlsales.core.models import FiveWordRating
from xlsales.core.people import FIVE_WORD_SHEET, average
from xlsales.core.pipeline import Inputs
from xlsales.core.problems import Problems
from xlsales.core.validation import validate_rows

D = Decimal
WORDS = ("激情", "自信", "坚持", "专业", "真诚")
REPS = [rep("E1", "张三"), rep("E2", "李四")]


def raw(quarter="2026-Q3", rep_id="E1", scores=(4, 4, 3, 5, 3), row=None, **extra):
    return {"row": row, "季度": quarter, "工号": rep_id, **dict(zip(WORDS, scores, strict=True)), "评价人": "王经理", **extra}


def rating(*args, **kwargs) -> FiveWordRating:
    return FiveWordRating.model_validate(raw(*args, **kwargs))


def summary(*ratings):
    results, problems = run(Inputs(reps=REPS, five_words=list(ratings)))
    return results.five_words, problems


def test_the_average_of_the_five_ratings_is_exact():
    (row,), problems = summary(rating(scores=(4, 4, 3, 5, 3)))
    assert problems.items == []
    assert row.ratings == (4, 4, 3, 5, 3)
    assert row.average == D("3.8") and isinstance(row.average, Decimal)
    assert (row.rep_id, row.name, row.quarter, row.rater) == ("E1", "张三", "2026-Q3", "王经理")
    assert row.trend is None and row.change is None  # the first rated quarter has nothing to compare with
    assert average((1, 2, 2, 2, 2)) == D("1.8")
    assert average((5, 5, 5, 5, 5)) == 5


def test_the_trend_compares_with_the_reps_previous_rated_quarter():
    rows, problems = summary(
        rating("2026-Q3", scores=(4, 4, 4, 4, 4)),          # out of order on the sheet
        rating("2025-Q4", scores=(3, 3, 3, 3, 3)),
        rating("2026-Q1", scores=(4, 3, 3, 3, 3)),          # 3.2: up 0.2 from 2025-Q4
        rating("2026-Q2", scores=(4, 3, 3, 3, 3)),          # 3.2: the same
        rating("2026-Q2", "E2", scores=(5, 5, 5, 5, 5)),    # another rep: its own first quarter
        rating("2026-Q4", "E2", scores=(4, 5, 5, 5, 5)),    # Q3 skipped: compared with Q2, down 0.2
    )
    assert problems.items == []
    got = [(r.rep_id, r.quarter, r.average, r.trend, r.change) for r in rows]
    assert got == [
        ("E1", "2025-Q4", D(3), None, None),
        ("E1", "2026-Q1", D("3.2"), "上升", D("0.2")),
        ("E1", "2026-Q2", D("3.2"), "持平", D(0)),
        ("E1", "2026-Q3", D(4), "上升", D("0.8")),
        ("E2", "2026-Q2", D(5), None, None),
        ("E2", "2026-Q4", D("4.8"), "下降", D("-0.2")),
    ]


def test_quarter_text_is_normalised():
    assert rating("2026q3").quarter == "2026-Q3"
    assert rating(" 2026 - Q1 ").quarter == "2026-Q1"


@pytest.mark.parametrize(("header", "value", "message"), [
    ("激情", 0, "激情应为 1 到 5 的整数"),
    ("自信", 6, "自信应为 1 到 5 的整数"),
    ("坚持", 3.5, "坚持应为 1 到 5 的整数"),
    ("专业", "很好", "专业应为 1 到 5 的整数"),
    ("真诚", None, "真诚必填，不能为空"),
    ("季度", "2026-Q5", "季度应为季度文字 YYYY-Qn，如 2026-Q3"),
    ("季度", "2026年第三季度", "季度应为季度文字 YYYY-Qn，如 2026-Q3"),
    ("季度", 2026, "季度应为季度文字 YYYY-Qn，如 2026-Q3"),
])
def test_a_bad_rating_or_quarter_is_an_error_on_its_field_and_the_row_is_left_out(header, value, message):
    problems = Problems()
    good = validate_rows(FiveWordRating, FIVE_WORD_SHEET, [{**raw(row=7), header: value}, raw("2026-Q2", row=8)], problems)
    assert [g.row for g in good] == [8]
    (problem,) = problems.items
    assert problem.is_error and (problem.sheet, problem.row, problem.field) == (FIVE_WORD_SHEET, 7, header)
    assert problem.message == message


def test_whole_numbers_from_excel_are_accepted():
    r = rating(scores=(1.0, "2", D("3.0"), 4, 5))
    assert (r.passion, r.confidence, r.persistence, r.expertise, r.sincerity) == (1, 2, 3, 4, 5)


def test_an_unknown_rep_and_a_repeated_quarter_are_errors_and_left_out():
    rows, problems = summary(
        rating("2026-Q3", "E1", row=2),
        rating("2026-Q3", "E9", row=3),                       # not in 销售人员
        rating("2026-Q3", "E1", scores=(1, 1, 1, 1, 1), row=4),  # the same (季度, 工号) again
    )
    assert [(r.rep_id, r.quarter, r.average) for r in rows] == [("E1", "2026-Q3", D("3.8"))]  # the first row kept
    unknown, repeated = problems.items
    assert unknown.is_error and (unknown.sheet, unknown.row, unknown.field, unknown.value) == (FIVE_WORD_SHEET, 3, "工号", "E9")
    assert "E9" in unknown.message
    assert repeated.is_error and (repeated.sheet, repeated.row, repeated.field) == (FIVE_WORD_SHEET, 4, "季度")
    assert "重复" in repeated.message and "第 2 行" in repeated.message


def test_the_sheet_is_optional():
    problems = Problems()
    inputs = read_inputs({"销售人员": [{"row": 2, "工号": "E1", "姓名": "张三", "状态": "在职"}]}, problems)
    assert inputs.five_words == [] and problems.items == []


def _book(tmp_path, ratings):
    path = tmp_path / "book.xlsx"
    write_tables(path, golden_tables(**{FIVE_WORD_SHEET: ratings}))
    return path


def test_compute_reads_the_sheet_and_writes_5词汇总(tmp_path):
    path = _book(tmp_path, [
        {k: v for k, v in raw("2026-Q2", scores=(3, 3, 3, 3, 3)).items() if k != "row"},
        {k: v for k, v in raw("2026-Q3").items() if k != "row"},
    ])
    assert main(["compute", str(path)]) == 0
    header = sheet_rows(path, FIVE_WORD_SUMMARY_SHEET)[0]
    assert tuple(header) == tuple(h for h, _ in EXTRA_OUTPUT_COLUMNS[FIVE_WORD_SUMMARY_SHEET])
    first, second = records(path, FIVE_WORD_SUMMARY_SHEET)
    assert first["季度"] == "2026-Q2" and first["平均分"] == 3 and first["趋势"] is None
    assert second["工号"] == "E1" and second["姓名"] == "张三" and second["激情"] == 4
    assert second["平均分"] == pytest.approx(3.8) and second["趋势"] == "上升" and second["变化"] == pytest.approx(0.8)
    assert openpyxl.load_workbook(path)[FIVE_WORD_SUMMARY_SHEET].protection.sheet


def test_bad_rows_are_reported_by_cell_in_校验结果(tmp_path):
    path = _book(tmp_path, [
        {k: v for k, v in raw("2026-Q3").items() if k != "row"},                    # row 2: fine
        {k: v for k, v in raw("2026-Q3", scores=(4, 7, 3, 5, 3)).items() if k != "row"},  # row 3: 自信 7
        {k: v for k, v in raw("2026-3").items() if k != "row"},                     # row 4: bad quarter
        {k: v for k, v in raw("2026-Q3", "E9").items() if k != "row"},              # row 5: unknown rep
        {k: v for k, v in raw("2026-Q3").items() if k != "row"},                    # row 6: repeated
    ])
    assert main(["compute", str(path)]) == 1  # errors, but the rest is computed
    data = read_workbook(path)
    assert data.columns[FIVE_WORD_SHEET]["季度"] == "A" and data.columns[FIVE_WORD_SHEET]["自信"] == "D"
    problems = [(p["级别"], p["单元格"], p["值"]) for p in records(path, "校验结果") if p["工作表"] == FIVE_WORD_SHEET]
    assert problems == [("错误", "D3", "7"), ("错误", "A4", "2026-3"), ("错误", "B5", "E9"), ("错误", "A6", "2026-Q3")]
    (row,) = records(path, FIVE_WORD_SUMMARY_SHEET)
    assert row["季度"] == "2026-Q3" and row["平均分"] == pytest.approx(3.8)


def test_a_workbook_without_the_sheet_reads_without_complaint(tmp_path):
    path = tmp_path / "book.xlsx"
    write_tables(path, golden_tables())
    data = read_workbook(path)
    assert FIVE_WORD_SHEET not in data.tables and not [p for p in data.problems if p.sheet == FIVE_WORD_SHEET]
    assert main(["compute", str(path)]) == 0
    assert records(path, FIVE_WORD_SUMMARY_SHEET) == []
