"""Render a workbook the way it prints: every visible sheet to one PDF (LibreOffice headless), then
pages to PNG (pdftoppm), to look at layout, widths, formats and Chinese text without Excel.

    python scripts/render_workbook.py workbook/BigAccount-demo.xlsm --out out/render
    python scripts/render_workbook.py BOOK.xlsx --out DIR --pages 3      # the first 3 pages of each sheet
    python scripts/render_workbook.py BOOK.xlsx --out DIR --all          # every page

Writes DIR/<stem>.pdf, DIR/<stem>-<sheet>-<n>.png and DIR/pages.tsv (page, sheet). Pages are told
apart by the page header that build_workbook.py sets (the sheet name, &A); a workbook without it
gets its pages numbered only. Needs soffice (libreoffice-calc-nogui), pdftoppm and pdftotext
(poppler-utils) and, for Chinese text, a CJK font (fonts-noto-cjk).
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path


def need(tool: str, package: str) -> str:
    path = shutil.which(tool)
    if path is None:
        raise SystemExit(f"{tool} not found: apt-get install -y {package}")
    return path


def to_pdf(workbook: Path, out: Path, timeout: int = 600) -> Path:
    """LibreOffice headless, with a throw-away profile (so that a running LibreOffice does not matter)."""
    soffice = shutil.which("soffice") or need("libreoffice", "libreoffice-calc-nogui")
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="render-profile-") as profile:
        run = subprocess.run([soffice, f"-env:UserInstallation={Path(profile).as_uri()}", "--headless", "--norestore",
                              "--convert-to", "pdf:calc_pdf_Export", "--outdir", str(out), str(workbook)],
                             capture_output=True, text=True, timeout=timeout)
    pdf = out / (workbook.stem + ".pdf")
    if run.returncode != 0 or not pdf.exists():
        raise SystemExit(f"LibreOffice could not convert {workbook}: {run.stdout}{run.stderr}")
    return pdf


def page_count(pdf: Path) -> int:
    info = subprocess.run([need("pdfinfo", "poppler-utils"), str(pdf)], capture_output=True, text=True, check=True).stdout
    match = re.search(r"^Pages:\s+(\d+)", info, re.MULTILINE)
    return int(match.group(1)) if match else 0


def page_sheets(pdf: Path, pages: int, names: set[str] | None = None) -> list[str]:
    """The sheet of each page, from its first text line (the page header); "" when unknown."""
    pdftotext = need("pdftotext", "poppler-utils")
    text = subprocess.run([pdftotext, "-layout", "-f", "1", "-l", str(pages), str(pdf), "-"],
                          capture_output=True, text=True, check=True).stdout
    out = []
    for page in text.split("\f")[:pages]:
        first = next((line.strip() for line in page.splitlines() if line.strip()), "")
        out.append(first if names is None or first in names else "")
    return out


def sheet_names(workbook: Path) -> set[str] | None:
    import zipfile

    try:
        with zipfile.ZipFile(workbook) as z:
            xml = z.read("xl/workbook.xml").decode("utf-8")
    except (KeyError, OSError, zipfile.BadZipFile):
        return None
    from html import unescape

    return {unescape(n) for n in re.findall(r'<sheet\b[^>]*\bname="([^"]*)"', xml)}


def safe(name: str) -> str:
    return re.sub(r'[\\/:*?"<>|\s]+', "_", name) or "page"


def to_png(pdf: Path, out: Path, page: int, stem: str, dpi: int) -> Path:
    subprocess.run([need("pdftoppm", "poppler-utils"), "-png", "-r", str(dpi), "-f", str(page), "-l", str(page),
                    "-singlefile", str(pdf), str(out / stem)], check=True)
    return out / f"{stem}.png"


def render(workbook: Path, out: Path, pages_per_sheet: int = 2, every_page: bool = False, dpi: int = 80) -> list[Path]:
    pdf = to_pdf(workbook, out)
    total = page_count(pdf)
    sheets = page_sheets(pdf, total, sheet_names(workbook))
    seen: dict[str, int] = {}
    pngs = []
    index = ["page\tsheet"]
    for number, sheet in enumerate(sheets, start=1):
        index.append(f"{number}\t{sheet}")
        key = sheet or "page"
        seen[key] = seen.get(key, 0) + 1
        if every_page or not sheet or seen[key] <= pages_per_sheet:
            pngs.append(to_png(pdf, out, number, f"{workbook.stem}-{safe(key)}-{seen[key]}", dpi))
    (out / "pages.tsv").write_text("\n".join(index) + "\n", encoding="utf-8")
    return pngs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("workbook", type=Path)
    parser.add_argument("--out", type=Path, default=Path("out/render"))
    parser.add_argument("--pages", type=int, default=2, help="PNG pages per sheet (default 2)")
    parser.add_argument("--all", action="store_true", help="a PNG of every page")
    parser.add_argument("--dpi", type=int, default=80)
    args = parser.parse_args(argv)
    if not args.workbook.exists():
        print(f"no such workbook: {args.workbook}", file=sys.stderr)
        return 2
    pngs = render(args.workbook.resolve(), args.out.resolve(), args.pages, args.all, args.dpi)
    print(f"{args.out / (args.workbook.stem + '.pdf')}: {len(pngs)} PNG pages in {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
