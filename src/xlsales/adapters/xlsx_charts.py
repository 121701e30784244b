"""Native Excel charts drawn by XlsxWriter, taken out as package parts for xlsx_writer to carry in.

Chart XML is a large, fussy format that Excel repairs (or refuses) at the smallest slip; XlsxWriter
writes it the way Excel does and is tested against files Excel made. So a board's charts are drawn
in a throw-away in-memory XlsxWriter workbook with a sheet of the same name (so the series
formulas '看板'!$B$3:$B$9 point at the right sheet) holding the same values (so the charts carry a
cache of them, for viewers that do not recalculate), and its drawing and chart parts are returned.
"""

from __future__ import annotations

import datetime as dt
import io
import re
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

CT_DRAWING = "application/vnd.openxmlformats-officedocument.drawing+xml"
CT_CHART = "application/vnd.openxmlformats-officedocument.drawingml.chart+xml"


@dataclass
class ChartSpec:
    """One chart: an XlsxWriter chart `type` ("bar", "column", "line", "pie", ...), its series
    (XlsxWriter add_series options, ranges as [sheet, first_row, first_col, last_row, last_col]),
    `options` calling chart.set_<key>(value) (title, x_axis, y_axis, legend, plotarea, ...), and its
    place: the top-left cell `anchor` (row, col; zero-based) and its size in pixels."""

    type: str
    series: list[dict[str, Any]]
    anchor: tuple[int, int]
    width: int = 480
    height: int = 288
    options: dict[str, Any] = field(default_factory=dict)
    subtype: str | None = None
    name: str | None = None  # the chart's name in Excel's selection pane


@dataclass
class DrawingParts:
    """A drawing part with its charts. The drawing's relationships name the charts as
    ../charts/<name> for each name in `charts`: rename them together (see retarget)."""

    drawing: bytes
    drawing_rels: bytes
    charts: list[tuple[str, bytes]]  # (file name, e.g. "chart1.xml", content)

    def retarget(self, names: Mapping[str, str]) -> bytes:
        """The drawing's relationships with each chart file name replaced by names[old]."""
        text = self.drawing_rels.decode("utf-8")
        return re.sub(r'Target="\.\./charts/([^"]+)"', lambda m: f'Target="../charts/{names[m.group(1)]}"',
                      text).encode("utf-8")


def draw_charts(sheet: str, cells: Mapping[tuple[int, int], Any], charts: list[ChartSpec],
                widths: Mapping[int, float] | None = None) -> DrawingParts:
    """`widths` (column -> width) must be the sheet's: a chart is anchored to the cells under its
    corners, which XlsxWriter computes from the column widths."""
    import xlsxwriter  # only when a board is written

    buffer = io.BytesIO()
    book = xlsxwriter.Workbook(buffer, {"in_memory": True, "strings_to_formulas": False,
                                        "strings_to_numbers": False, "strings_to_urls": False})
    ws = book.add_worksheet(sheet)
    for col, width in (widths or {}).items():
        ws.set_column(col, col, width)
    for (r, c), value in cells.items():  # the values the charts cache
        if isinstance(value, bool) or value is None:
            continue
        if isinstance(value, (int, float, Decimal)):
            ws.write_number(r, c, float(value))
        elif isinstance(value, dt.date):
            ws.write_string(r, c, value.isoformat())
        else:
            ws.write_string(r, c, str(value))
    for spec in charts:
        kind: dict[str, str] = {"type": spec.type}
        if spec.subtype:
            kind["subtype"] = spec.subtype
        chart = book.add_chart(kind)
        for series in spec.series:
            chart.add_series(series)
        for key, value in spec.options.items():
            getattr(chart, f"set_{key}")(value)
        chart.set_size({"width": spec.width, "height": spec.height})
        row, col = spec.anchor
        ws.insert_chart(row, col, chart, {"object_position": 1, "description": spec.name or ""})
    book.close()

    with zipfile.ZipFile(io.BytesIO(buffer.getvalue())) as made:
        drawing = made.read("xl/drawings/drawing1.xml")
        rels = made.read("xl/drawings/_rels/drawing1.xml.rels")
        parts = [(name.rsplit("/", 1)[1], made.read(name)) for name in made.namelist()
                 if re.fullmatch(r"xl/charts/chart\d+\.xml", name)]
    names = [spec.name for spec in charts]
    if any(names):  # XlsxWriter names them "Chart 1", "Chart 2" ...: use the board's names instead
        text = drawing.decode("utf-8")
        for i, name in enumerate(names, start=1):
            if name:
                text = text.replace(f'name="Chart {i}"', f'name="{_attr(name)}"', 1)
        drawing = text.encode("utf-8")
    return DrawingParts(drawing, rels, parts)


def _attr(text: str) -> str:
    return text.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;").replace(">", "&gt;")
