"""Write a contract-shaped .xlsx with a big relationship log, fast (the sheet XML is written directly).

    python benchmarks/make_big_workbook.py big.xlsx --log-rows 1000000 --orders 50000

The file looks like one Excel saved: shared strings, dates as serial numbers with a date number
format (numFmtId 14), margins percent-formatted, one styles.xml. `--inline-strings` writes inline
strings instead (what XlsxWriter's constant_memory mode does). `--bad-every K` plants a bad cell
in every K-th log row (text in 次数, a blank date, a zero count, a text date), to time the error path.
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import time
import zipfile
from collections.abc import Iterable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from xlsales.adapters.xlsx_writer import column_letter as _col
from xlsales.core.activity import LOG_SHEET
from xlsales.core.rulebook import default_tables

EPOCH = dt.date(1899, 12, 30)
YEAR = 2026
EVALUATION_DATE = dt.date(2026, 11, 30)

# style ids in styles.xml below: 0 general, 1 date (numFmtId 14), 2 percent (numFmtId 10), 3 custom yyyy-mm-dd
GENERAL, DATE, PERCENT, ISO_DATE = 0, 1, 2, 3

SHEETS = ["参数", "动作库", "角色系数", "销售人员", "客户", LOG_SHEET, "分级规则", "业绩目标", "提成档位", "发放阶段",
          "商机", "订单", "回款", "进度"]

LOG_HEADERS = ["日期", "工号", "客户编码", "联系人", "角色", "动作编码", "次数", "审批状态", "备注"]

_STYLES = """<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<styleSheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">
<numFmts count="1"><numFmt numFmtId="164" formatCode="yyyy\\-mm\\-dd;@"/></numFmts>
<fonts count="1"><font><sz val="11"/><name val="Calibri"/></font></fonts>
<fills count="2"><fill><patternFill patternType="none"/></fill><fill><patternFill patternType="gray125"/></fill></fills>
<borders count="1"><border><left/><right/><top/><bottom/><diagonal/></border></borders>
<cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0"/></cellStyleXfs>
<cellXfs count="4"><xf numFmtId="0" fontId="0" fillId="0" borderId="0" xfId="0"/>\
<xf numFmtId="14" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/>\
<xf numFmtId="10" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/>\
<xf numFmtId="164" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/></cellXfs>
<cellStyles count="1"><cellStyle name="Normal" xfId="0" builtinId="0"/></cellStyles>
</styleSheet>"""

_NS = 'xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"'
_REL_NS = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"


class SheetWriter:
    """Turns rows of Python values into sheet XML; strings go to a shared table (or inline)."""

    def __init__(self, shared: dict[str, int] | None) -> None:
        self.shared = shared  # None: inline strings

    def text(self, ref: str, value: str, style: int = GENERAL) -> str:
        s = f' s="{style}"' if style else ""
        if self.shared is None:
            return f'<c r="{ref}"{s} t="inlineStr"><is><t>{escape(value)}</t></is></c>'
        index = self.shared.get(value)
        if index is None:
            index = self.shared[value] = len(self.shared)
        return f'<c r="{ref}"{s} t="s"><v>{index}</v></c>'

    def cell(self, ref: str, value: Any, style: int | None = None) -> str:
        if value is None:
            return ""
        if isinstance(value, bool):
            return f'<c r="{ref}" t="b"><v>{int(value)}</v></c>'
        if isinstance(value, dt.date):
            return f'<c r="{ref}" s="{DATE if style is None else style}"><v>{(value - EPOCH).days}</v></c>'
        if isinstance(value, (int, float, Decimal)):
            s = f' s="{style}"' if style else ""
            return f'<c r="{ref}"{s}><v>{value}</v></c>'
        return self.text(ref, str(value), style or GENERAL)

    def rows(self, headers: list[str], records: Iterable[dict[str, Any]], styles: dict[str, int] | None = None) -> Iterator[str]:
        styles = styles or {}
        letters = [_col(i) for i in range(len(headers))]
        yield '<row r="1">' + "".join(self.text(f"{c}1", h) for c, h in zip(letters, headers, strict=True)) + "</row>"
        for r, record in enumerate(records, start=2):
            cells = "".join(self.cell(f"{c}{r}", record.get(h), styles.get(h)) for c, h in zip(letters, headers, strict=True))
            yield f'<row r="{r}">{cells}</row>'


def _sheet_xml(rows: Iterable[str]) -> Iterator[str]:
    yield f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<worksheet {_NS} xmlns:r="{_REL_NS}"><sheetData>'
    yield from rows
    yield "</sheetData></worksheet>"


def _log_rows(writer: SheetWriter, n: int, reps: list[str], customers: list[str], actions: list[str], roles: list[str],
              rng: random.Random, bad_every: int) -> Iterator[str]:
    """The hot loop: one f-string a row, shared-string indexes looked up once."""
    yield '<row r="1">' + "".join(writer.text(f"{_col(i)}1", h) for i, h in enumerate(LOG_HEADERS)) + "</row>"
    start = (dt.date(YEAR - 1, 12, 1) - EPOCH).days
    days = (EVALUATION_DATE - dt.date(YEAR - 1, 12, 1)).days + 1
    contacts = ["总经理", "副总", "信息中心主任", "采购经理", "技术主管", "总经理秘书"]
    weights = [20, 25, 8, 6, 3, 2, 3, 2, 3, 1, 3, 1, 0.3][: len(actions)]

    def t(ref: str, value: str) -> str:
        return writer.text(ref, value)

    action_picks = rng.choices(actions, weights, k=min(n, 100_000))
    for i in range(n):
        r = i + 2
        customer = customers[rng.randrange(len(customers))]
        rep = reps[int(customer[1:]) % len(reps)] if rng.random() < 0.7 else reps[rng.randrange(len(reps))]
        action = action_picks[i % len(action_picks)]
        serial = start + rng.randrange(days)
        count = 1 if rng.random() < 0.9 else 2
        date_cell = f'<c r="A{r}" s="{DATE}"><v>{serial}</v></c>'
        count_cell = f'<c r="G{r}"><v>{count}</v></c>'
        if bad_every and i % bad_every == bad_every - 1:
            kind = (i // bad_every) % 4
            if kind == 0:
                count_cell = t(f"G{r}", "两次")
            elif kind == 1:
                date_cell = ""
            elif kind == 2:
                count_cell = f'<c r="G{r}"><v>0</v></c>'
            else:
                day = EPOCH + dt.timedelta(days=serial)
                date_cell = t(f"A{r}", day.isoformat())
        approval = ""
        if action == "A11":
            approval = t(f"H{r}", "已批准" if rng.random() < 0.8 else "待审批")
        note = t(f"I{r}", f"第{i}次跟进") if i % 97 == 0 else ""
        yield (f'<row r="{r}">{date_cell}{t(f"B{r}", rep)}{t(f"C{r}", customer)}'
               f'{t(f"D{r}", contacts[i % 6])}{t(f"E{r}", roles[i % len(roles)])}{t(f"F{r}", action)}'
               f'{count_cell}{approval}{note}</row>')


def build_tables(log_rows: int, orders: int, seed: int = 7) -> dict[str, tuple[list[str], list[dict[str, Any]], dict[str, int]]]:
    """Every sheet except the log as (headers, records, styles by header)."""
    rng = random.Random(seed)
    rules = default_tables()
    n_reps = 200
    n_customers = max(100, min(20_000, log_rows // 50))
    reps = [f"E{i:04d}" for i in range(1, n_reps + 1)]
    customers = [f"C{i:05d}" for i in range(1, n_customers + 1)]
    sheets: dict[str, tuple[list[str], list[dict[str, Any]], dict[str, int]]] = {}
    sheets["参数"] = (["参数", "值", "说明"], [
        {"参数": "年度", "值": YEAR}, {"参数": "评估日期", "值": EVALUATION_DATE}, {"参数": "排名奖", "值": 5000},
    ], {})
    for name, headers in (("动作库", ["动作编码", "动作名称", "分值", "系数", "每月上限", "指标", "需审批"]),
                          ("角色系数", ["角色", "系数"]), ("分级规则", ["等级", "最低关系分", "必备指标", "赢单概率"]),
                          ("提成档位", ["起点", "倍数"]), ("发放阶段", ["阶段", "比例"])):
        records = []
        for raw in rules[name]:
            record = {k: v for k, v in raw.items() if k != "row"}
            for k, v in record.items():
                if isinstance(v, str) and k in ("系数", "赢单概率", "比例"):
                    record[k] = Decimal(v)
            records.append(record)
        sheets[name] = (headers, records, {"赢单概率": PERCENT, "比例": PERCENT})
    sheets["销售人员"] = (["工号", "姓名", "区域", "状态"],
                      [{"工号": r, "姓名": f"销售{r}", "区域": "华北华东华南西南"[2 * (i % 4): 2 * (i % 4) + 2],
                        "状态": "在职" if i % 50 else "离职"} for i, r in enumerate(reps)], {})
    sheets["客户"] = (["客户编码", "客户名称", "客户经理", "技术经理", "服务经理", "必保", "战略突破奖", "立场", "自评等级"],
                    [{"客户编码": c, "客户名称": f"客户{c}集团", "客户经理": reps[int(c[1:]) % n_reps],
                      "技术经理": reps[(i * 7) % n_reps], "服务经理": None, "必保": "是" if i % 40 == 0 else "否",
                      "战略突破奖": 1_000_000 if i % 500 == 5 else None, "立场": None,
                      "自评等级": ["铁杆", "支持", "中立", None][i % 4]} for i, c in enumerate(customers)], {})
    sheets["业绩目标"] = (["年度", "工号", "保底目标", "挑战目标", "自报目标"] + [f"{m}月" for m in range(1, 13)],
                      [{"年度": YEAR, "工号": r, "保底目标": 30_000_000 + 1_000_000 * (i % 20),
                        "挑战目标": 45_000_000 + 1_000_000 * (i % 20)} for i, r in enumerate(reps)], {})
    order_rows, collection_rows, progress_rows = [], [], []
    for i in range(orders):
        signed = dt.date(YEAR, rng.randint(1, 11), rng.randint(1, 28))
        amount = Decimal(rng.randrange(5, 500)) * 10_000
        customer = customers[rng.randrange(n_customers)]
        done = signed + dt.timedelta(days=rng.randint(30, 200))
        order_id = f"SO{YEAR}{i + 1:06d}"
        order_rows.append({"订单号": order_id, "签约日期": signed, "工号": reps[int(customer[1:]) % n_reps], "客户编码": customer,
                           "合同金额": amount, "毛利率": Decimal(rng.randrange(15, 40)) / 100,
                           "完工日期": done if done <= EVALUATION_DATE else None})
        paid = signed + dt.timedelta(days=rng.randint(20, 120))
        if paid <= EVALUATION_DATE:
            collection_rows.append({"订单号": order_id, "回款日期": paid, "回款金额": amount / 2})
        if i % 5 == 0:
            progress_rows.append({"订单号": order_id, "日期": signed + dt.timedelta(days=30), "累计完工比例": Decimal("0.4")})
    sheets["订单"] = (["订单号", "签约日期", "工号", "客户编码", "合同金额", "毛利率", "完工日期"], order_rows, {"毛利率": PERCENT})
    sheets["回款"] = (["订单号", "回款日期", "回款金额"], collection_rows, {})
    sheets["进度"] = (["订单号", "日期", "累计完工比例"], progress_rows, {"累计完工比例": PERCENT})
    sheets["商机"] = (["商机编码", "客户编码", "工号", "金额", "状态", "状态日期", "预计签约月", "暂缓原因"],
                    [{"商机编码": f"OP{i:05d}", "客户编码": c, "工号": reps[int(c[1:]) % n_reps],
                      "金额": Decimal(rng.randrange(30, 1200)) * 100_000, "状态": "跟进中", "预计签约月": f"{YEAR}-12"}
                     for i, c in enumerate(customers[: max(10, n_customers // 2)])], {})
    sheets["_ids"] = (reps, [{"customers": customers}], {})
    return sheets


def make_workbook(path: str | Path, log_rows: int = 1_000_000, orders: int = 50_000, *, inline_strings: bool = False,
                  bad_every: int = 0, seed: int = 7) -> Path:
    path = Path(path)
    sheets = build_tables(log_rows, orders, seed)
    reps, ids, _ = sheets.pop("_ids")
    customers = ids[0]["customers"]
    rng = random.Random(seed + 1)
    shared: dict[str, int] | None = None if inline_strings else {}
    writer = SheetWriter(shared)
    actions = [r["动作编码"] for r in sheets["动作库"][1]]
    roles = [r["角色"] for r in sheets["角色系数"][1]]
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as zf:
        for index, name in enumerate(SHEETS, start=1):
            if name == LOG_SHEET:
                rows: Iterable[str] = _log_rows(writer, log_rows, reps, customers, actions, roles, rng, bad_every)
            else:
                headers, records, styles = sheets[name]
                rows = writer.rows(headers, records, styles)
            with zf.open(f"xl/worksheets/sheet{index}.xml", "w", force_zip64=True) as out:
                buffer: list[str] = []
                for piece in _sheet_xml(rows):
                    buffer.append(piece)
                    if len(buffer) >= 4096:
                        out.write("".join(buffer).encode())
                        buffer.clear()
                out.write("".join(buffer).encode())
        if shared is not None:
            strings = "".join(f"<si><t>{escape(s)}</t></si>" for s in shared)
            zf.writestr("xl/sharedStrings.xml", f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
                                                f'<sst {_NS} count="{len(shared)}" uniqueCount="{len(shared)}">{strings}</sst>')
        zf.writestr("xl/styles.xml", _STYLES)
        sheet_entries = "".join(f'<sheet name="{escape(n)}" sheetId="{i}" r:id="rId{i}"/>' for i, n in enumerate(SHEETS, 1))
        zf.writestr("xl/workbook.xml", f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
                                       f'<workbook {_NS} xmlns:r="{_REL_NS}"><sheets>{sheet_entries}</sheets></workbook>')
        ws_type = "http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet"
        rels = "".join(f'<Relationship Id="rId{i}" Type="{ws_type}" Target="worksheets/sheet{i}.xml"/>'
                       for i in range(1, len(SHEETS) + 1))
        n = len(SHEETS)
        rels += (f'<Relationship Id="rId{n + 1}" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/styles" '
                 f'Target="styles.xml"/>')
        if shared is not None:
            rels += (f'<Relationship Id="rId{n + 2}" '
                     f'Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/sharedStrings" '
                     f'Target="sharedStrings.xml"/>')
        zf.writestr("xl/_rels/workbook.xml.rels", '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
                    f'<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">{rels}</Relationships>')
        zf.writestr("_rels/.rels", '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
                    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
                    '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" '
                    'Target="xl/workbook.xml"/></Relationships>')
        main = "application/vnd.openxmlformats-officedocument.spreadsheetml"
        overrides = "".join(f'<Override PartName="/xl/worksheets/sheet{i}.xml" ContentType="{main}.worksheet+xml"/>'
                            for i in range(1, len(SHEETS) + 1))
        overrides += f'<Override PartName="/xl/workbook.xml" ContentType="{main}.sheet.main+xml"/>'
        overrides += f'<Override PartName="/xl/styles.xml" ContentType="{main}.styles+xml"/>'
        if shared is not None:
            overrides += f'<Override PartName="/xl/sharedStrings.xml" ContentType="{main}.sharedStrings+xml"/>'
        zf.writestr("[Content_Types].xml", '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
                    '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
                    '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
                    f'<Default Extension="xml" ContentType="application/xml"/>{overrides}</Types>')
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path")
    parser.add_argument("--log-rows", type=int, default=1_000_000)
    parser.add_argument("--orders", type=int, default=50_000)
    parser.add_argument("--inline-strings", action="store_true")
    parser.add_argument("--bad-every", type=int, default=0)
    args = parser.parse_args()
    start = time.perf_counter()
    path = make_workbook(args.path, args.log_rows, args.orders, inline_strings=args.inline_strings, bad_every=args.bad_every)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB) in {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
