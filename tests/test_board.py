"""看板: the board's layout and charts (adapters.board), how the writer carries them into a workbook
(a drawing and chart parts, redrawn in place, never over a sheet of the user's), live Excel through
the xlwings stand-in, and LibreOffice reading the charts back from the cells."""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
import json
import posixpath
import re
import shutil
import subprocess
import zipfile
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import openpyxl
import pytest
import xlsxwriter

from xlsales.adapters.board import BOARD_SHEET, DATA_COL, MAX_BARS, TOP, board_sheet
from xlsales.adapters.sheets import result_sheets
from xlsales.adapters.xlsx_writer import BOARD_MARK, BoardOut, write_sheets
from xlsales.adapters.xlwings_port import XlwingsPort, chart_source
from xlsales.core.dashboard import Dashboard, dashboard
from xlsales.core.intake import read_workbook_tables
from xlsales.core.pipeline import compute
from xlsales.core.problems import Problems
from xlsales.core.ranking import Group, RankingRow
from xlsales.demo import DEMO_DATE, demo_tables
from xlwings_stub import StubBook

FIXTURES = Path(__file__).parent / "fixtures"
CHART_NAMES = ["月度排名", "客户等级分布", "目标达成", "发放及时率", "加权商机"]


@pytest.fixture(scope="module")
def demo():
    problems = Problems()
    book, inputs = read_workbook_tables(demo_tables(), DEMO_DATE, problems)
    results = compute(inputs, book, problems)
    return results, problems


def values(board: BoardOut, ref: list[Any]) -> list[Any]:
    """The cell values a chart range [sheet, first_row, col, last_row, col] points at."""
    sheet, r1, c1, r2, c2 = ref
    assert sheet == board.name and c1 == c2
    return [board.cells[(r, c1)].value if (r, c1) in board.cells else None for r in range(r1, r2 + 1)]


def chart(board: BoardOut, name: str):
    (found,) = [c for c in board.charts if c.name == name]
    return found


# --- the board ------------------------------------------------------------------------------------

def test_the_five_charts_draw_the_figures_of_the_run(demo):
    results, _ = demo
    figures = dashboard(results)
    board = board_sheet(figures)
    assert [c.name for c in board.charts] == CHART_NAMES

    ranking = chart(board, "月度排名")
    assert [s["name"] for s in ranking.series] == [g.value for g in Group]
    assert values(board, ranking.series[0]["categories"]) == [f"{r.rank}. {r.name}" for r in figures.ranking]
    for k, group in enumerate(Group):  # each rep's score in the column of its group, nothing elsewhere
        assert values(board, ranking.series[k]["values"]) == [r.score if r.group is group else None for r in figures.ranking]

    (tiers,) = chart(board, "客户等级分布").series
    assert values(board, tiers["categories"]) == ["铁杆", "支持", "中立", "反对"]
    assert values(board, tiers["values"]) == [t.customers for t in figures.tiers]
    assert sum(values(board, tiers["values"])) == len(results.ratings)

    floor, challenge = chart(board, "目标达成").series
    assert values(board, floor["categories"]) == [a.name for a in figures.attainment]
    assert values(board, floor["values"]) == [a.vs_floor.quantize(Decimal("0.0001")) for a in figures.attainment]
    assert values(board, challenge["values"]) == [a.vs_challenge.quantize(Decimal("0.0001")) for a in figures.attainment]

    (on_time,) = chart(board, "发放及时率").series
    assert values(board, on_time["categories"]) == [r.month for r in results.on_time if r.due]
    assert values(board, on_time["values"]) == [r.rate.quantize(Decimal("0.0001")) for r in results.on_time if r.due]

    amount, weighted = chart(board, "加权商机").series
    assert values(board, amount["categories"]) == [m.month for m in figures.pipeline]
    assert values(board, weighted["values"]) == [(m.weighted / 10_000).quantize(Decimal("0.01"), ROUND_HALF_UP)
                                                 for m in figures.pipeline]
    assert sum(values(board, weighted["values"])) == pytest.approx(figures.weighted_pipeline / 10_000, abs=Decimal("0.1"))


def test_charts_do_not_overlap_and_the_tables_stay_right_of_them(demo):
    board = board_sheet(dashboard(demo[0]))
    for col in {c.anchor[1] for c in board.charts}:
        placed = sorted((c.anchor[0], c.anchor[0] + c.height // 20) for c in board.charts if c.anchor[1] == col)
        assert all(end < start for (_, end), (start, _) in itertools.pairwise(placed)), placed
    assert all(c.anchor[0] >= TOP for c in board.charts)
    assert all(col >= DATA_COL or row < TOP for row, col in board.cells)  # no cell under a chart


def _rows(n: int) -> list[RankingRow]:
    return [RankingRow("2026-11", i, f"E{i:03d}", f"销售{i}", None, Decimal(0), Decimal(100 - i),
                       Group.TOP if i <= 15 else Group.BOTTOM if i > n - 8 else Group.MIDDLE, 0) for i in range(1, n + 1)]


def test_a_big_team_shows_its_first_and_last_in_the_per_rep_charts(demo):
    figures = dataclasses.replace(dashboard(demo[0]), ranking=_rows(50))
    ranking = chart(board_sheet(figures), "月度排名")
    shown = values(board_sheet(figures), ranking.series[0]["categories"])
    half = MAX_BARS // 2
    assert len(shown) == MAX_BARS
    assert shown[:2] == ["1. 销售1", "2. 销售2"] and shown[half - 1] == f"{half}. 销售{half}"
    assert shown[half] == f"{50 - half + 1}. 销售{50 - half + 1}" and shown[-1] == "50. 销售50"
    assert "共 50 人" in ranking.options["title"]["name"]
    # a team of exactly MAX_BARS shows everyone, and says nothing about it
    small = chart(board_sheet(dataclasses.replace(figures, ranking=_rows(MAX_BARS))), "月度排名")
    assert "共" not in small.options["title"]["name"]


def test_an_empty_run_gives_notes_instead_of_empty_charts():
    empty = Dashboard(dt.date(2026, 11, 30), "2026-11", [], [], [], [], [], Decimal(0), Decimal(0), Decimal(0))
    board = board_sheet(empty)
    assert board.charts == []
    texts = [c.value for c in board.cells.values() if isinstance(c.value, str)]
    assert any("没有排名" in t for t in texts) and any("没有跟进中的商机" in t for t in texts)


# --- the board in a workbook ---------------------------------------------------------------------

def check_package(path: Path) -> dict[str, bytes]:
    """Every part has a content type, every override and every internal relationship target exists."""
    with zipfile.ZipFile(path) as z:
        parts = {n: z.read(n) for n in z.namelist()}
    types = parts["[Content_Types].xml"].decode()
    defaults = set(re.findall(r'<Default Extension="([^"]+)"', types))
    overrides = set(re.findall(r'<Override PartName="/([^"]+)"', types))
    assert overrides <= set(parts), overrides - set(parts)
    for name in parts:
        if name != "[Content_Types].xml":
            assert name in overrides or name.rsplit(".", 1)[-1] in defaults, name
    for name, data in parts.items():
        if not name.endswith(".rels"):
            continue
        source = name.replace("_rels/", "").removesuffix(".rels")
        for target, mode in re.findall(r'Target="([^"]+)"(?: TargetMode="([^"]+)")?', data.decode()):
            if mode != "External":
                resolved = posixpath.normpath(posixpath.join(posixpath.dirname(source), target)).lstrip("/")
                assert resolved in parts, (name, target)
    return parts


def drawing_of(parts: dict[str, bytes], sheet_part: str) -> tuple[str, list[str]]:
    folder, base = sheet_part.rsplit("/", 1)
    (drawing,) = re.findall(r'Target="\.\./drawings/([^"]+)"', parts[f"{folder}/_rels/{base}.rels"].decode())
    charts = re.findall(r'Target="\.\./charts/([^"]+)"', parts[f"xl/drawings/_rels/{drawing}.rels"].decode())
    return drawing, charts


def sheet_part(path: Path, name: str) -> str:
    with zipfile.ZipFile(path) as z:
        wb = z.read("xl/workbook.xml").decode()
        rels = z.read("xl/_rels/workbook.xml.rels").decode()
    rid = re.search(rf'<sheet name="{re.escape(name)}" sheetId="\d+" r:id="([^"]+)"', wb).group(1)  # type: ignore[union-attr]
    return "xl/" + re.search(rf'Id="{rid}" Type="[^"]+" Target="([^"]+)"', rels).group(1)  # type: ignore[union-attr]


def plain_workbook(path: Path, **sheets: list[list[Any]]) -> Path:
    book = xlsxwriter.Workbook(str(path))
    for name, rows in ({"数据": [[1]]} | sheets).items():
        ws = book.add_worksheet(name)
        for i, row in enumerate(rows):
            ws.write_row(i, 0, row)
    book.close()
    return path


def test_a_board_is_redrawn_in_place_with_nothing_left_behind(tmp_path, demo):
    path = plain_workbook(tmp_path / "book.xlsx")
    board = board_sheet(dashboard(demo[0]))
    assert write_sheets(path, [board]) == [BOARD_SHEET]
    first = check_package(path)
    part = sheet_part(path, BOARD_SHEET)
    drawing, charts = drawing_of(first, part)
    assert len(charts) == 5 and all(f"xl/charts/{c}" in first for c in charts)
    assert "<drawing r:id=" in first[part].decode()
    assert f"'{BOARD_SHEET}'!$A$1" in first["xl/workbook.xml"].decode() and BOARD_MARK in first["xl/workbook.xml"].decode()

    smaller = board_sheet(dataclasses.replace(dashboard(demo[0]), pipeline=[]))  # four charts this time
    write_sheets(path, [smaller])
    second = check_package(path)
    assert sheet_part(path, BOARD_SHEET) == part
    drawing2, charts2 = drawing_of(second, part)
    assert drawing2 == drawing and len(charts2) == 4
    assert {n for n in second if n.startswith("xl/charts/")} == {f"xl/charts/{c}" for c in charts2}  # no orphans
    assert {n for n in second if n.startswith("xl/drawings/") and n.endswith(".xml")} == {f"xl/drawings/{drawing}"}
    assert second["xl/workbook.xml"].decode().count(BOARD_MARK) == 1


def test_a_sheet_of_the_users_called_看板_is_left_alone(tmp_path, demo):
    path = plain_workbook(tmp_path / "book.xlsx", 看板=[["我自己的看板"], [42]])
    before = check_package(path)
    own = sheet_part(path, "看板")
    written = write_sheets(path, [board_sheet(dashboard(demo[0]))])
    after = check_package(path)
    assert written == ["看板（xlsales）"]
    assert after[own] == before[own]
    wb = openpyxl.load_workbook(path)
    assert wb["看板"]["A1"].value == "我自己的看板" and wb["看板（xlsales）"]["A1"].value == "看板 · 2026-11"
    # the charts point at the board's own sheet, not at the user's
    part = sheet_part(path, "看板（xlsales）")
    for name in drawing_of(after, part)[1]:
        formulas = re.findall(r"<c:f>(.*?)</c:f>", after[f"xl/charts/{name}"].decode())
        assert formulas and all(f.startswith("'看板（xlsales）'!") for f in formulas), formulas
    # the next run finds it again by the mark
    assert write_sheets(path, [board_sheet(dashboard(demo[0]))]) == ["看板（xlsales）"]
    assert openpyxl.load_workbook(path).sheetnames == ["数据", "看板", "看板（xlsales）"]


def test_a_renamed_board_is_still_the_board(tmp_path, demo):
    path = plain_workbook(tmp_path / "book.xlsx")
    write_sheets(path, [board_sheet(dashboard(demo[0]))])
    # the manager renames it in Excel: Excel renames the sheet and every reference to it, the mark too
    with zipfile.ZipFile(path) as z:
        parts = {i: z.read(i) for i in z.infolist()}
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for info, data in parts.items():
            if info.filename == "xl/workbook.xml":
                data = data.decode().replace(f'name="{BOARD_SHEET}"', 'name="经理看板"').replace(
                    f"'{BOARD_SHEET}'!", "'经理看板'!").encode()
            z.writestr(info, data)
    assert write_sheets(path, [board_sheet(dashboard(demo[0]))]) == ["经理看板"]
    assert openpyxl.load_workbook(path).sheetnames == ["数据", "经理看板"]
    check_package(path)


def test_compute_writes_the_board_with_the_other_results(tmp_path, demo):
    results, problems = demo
    path = plain_workbook(tmp_path / "book.xlsx")
    names = write_sheets(path, result_sheets(results, problems.items))
    assert names[-1] == BOARD_SHEET
    parts = check_package(path)
    assert len(drawing_of(parts, sheet_part(path, BOARD_SHEET))[1]) == 5
    ws = openpyxl.load_workbook(path)[BOARD_SHEET]
    assert ws.protection.sheet and ws["A1"].value == "看板 · 2026-11"


# --- live Excel (the xlwings stand-in) -------------------------------------------------------------

def test_live_excel_gets_the_same_board_and_charts_from_their_tables(demo):
    board = board_sheet(dashboard(demo[0]))
    book = StubBook({"数据": [[1]], "看板": [["我自己的看板"]]})
    port = XlwingsPort(book)
    port.write_board(board)
    own, ours = book.sheets["看板"], book.sheets["看板（xlsales）"]
    assert own.grid() == [["我自己的看板"]] and not own.charts
    assert [c.chart_type for c in ours.charts] == ["bar_clustered", "pie", "bar_clustered", "line_markers", "column_clustered"]
    assert [c.source for c in ours.charts] == [chart_source(spec) for spec in board.charts]
    assert ours.charts[1].place[2:] == (board.charts[1].width * 0.75, board.charts[1].height * 0.75)  # points
    ranking = board.charts[0]
    first = ranking.series[0]["categories"][1]
    assert ours.charts[0].source == ",".join(f"{col}{first}:{col}{first + len(dashboard(demo[0]).ranking)}"
                                             for col in ("R", "S", "T", "U"))  # header row and rows, name and groups
    assert ours.values[(1, 1)] == "看板 · 2026-11" and ours.api.ProtectContents
    assert book.names[BOARD_MARK].refers_to == "='看板（xlsales）'!$A$1"
    port.write_board(board)  # again: the old charts go, the board stays where it is
    assert len(ours.charts) == 5 and [s.name for s in book.sheets] == ["数据", "看板", "看板（xlsales）"]


# --- LibreOffice reads the charts from the cells ----------------------------------------------------

@pytest.mark.skipif(shutil.which("soffice") is None, reason="LibreOffice is not installed")
def test_libreoffice_draws_the_charts_from_the_board_cells(tmp_path, demo):
    results, problems = demo
    path = plain_workbook(tmp_path / "book.xlsx")
    write_sheets(path, result_sheets(results, problems.items))
    done = subprocess.run(["/usr/bin/python3", str(FIXTURES / "lo_charts.py"), str(path), str(tmp_path / "profile"),
                           BOARD_SHEET], capture_output=True, text=True, timeout=240, cwd=FIXTURES)
    assert done.returncode == 0, done.stderr
    charts = json.loads(done.stdout)["charts"]
    assert len(charts) == 5
    figures = dashboard(results)
    ranking, tiers, attainment, on_time, pipeline = charts
    assert ranking["title"].startswith("2026-11 月度排名")
    assert ranking["category_texts"] == [f"{r.rank}. {r.name}" for r in figures.ranking]
    top = [float(r.score) if r.group is Group.TOP else None for r in figures.ranking]
    assert ranking["series"][0]["numbers"] == top  # scores have two decimals: exact as floats here
    assert tiers["types"] == ["com.sun.star.chart2.PieChartType"]
    assert tiers["series"][0]["numbers"] == [float(t.customers) for t in figures.tiers]
    assert attainment["category_texts"] == [a.name for a in figures.attainment]
    assert on_time["types"] == ["com.sun.star.chart2.LineChartType"]
    assert on_time["series"][0]["numbers"] == pytest.approx([float(r.rate) for r in results.on_time if r.due], abs=1e-4)
    assert pipeline["category_texts"] == [m.month for m in figures.pipeline]
    for entry in charts:
        for series in entry["series"]:
            assert series["values"].startswith("$看板."), series


def test_the_run_report_names_the_board_it_wrote(tmp_path):
    from xlsales.adapters.filerun import run_workbook
    from xlsales.adapters.sheets import write_tables

    path = tmp_path / "book.xlsx"
    write_tables(path, {**demo_tables(), "看板": [{"我的": "自己的看板"}]})
    report, _, _ = run_workbook(path, "compute", DEMO_DATE)
    assert report.sheets_written[-1] == "看板（xlsales）"
    assert openpyxl.load_workbook(path)["看板"]["A2"].value == "自己的看板"


def test_a_copy_of_the_board_does_not_take_its_place(tmp_path, demo):
    """Copying 看板 in Excel gives the copy a sheet-level copy of the mark: the workbook-wide one rules."""
    path = plain_workbook(tmp_path / "book.xlsx", 看板副本=[["我复制的"]])
    write_sheets(path, [board_sheet(dashboard(demo[0]))])
    with zipfile.ZipFile(path) as z:
        parts = {i: z.read(i) for i in z.infolist()}
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for info, data in parts.items():
            if info.filename == "xl/workbook.xml":  # the copy's local name first, as Excel may order it
                data = data.decode().replace(
                    "<definedNames>", f'<definedNames><definedName name="{BOARD_MARK}" localSheetId="1" '
                                      "hidden=\"1\">'看板副本'!$A$1</definedName>").encode()
            z.writestr(info, data)
    assert write_sheets(path, [board_sheet(dashboard(demo[0]))]) == [BOARD_SHEET]
    assert openpyxl.load_workbook(path)["看板副本"]["A1"].value == "我复制的"
