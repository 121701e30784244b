"""The core is pure: no Excel library, no file or OS access, so it runs the same under every adapter."""

from __future__ import annotations

import ast
from pathlib import Path

import xlsales.core

CORE = Path(xlsales.core.__file__).parent
FORBIDDEN_MODULES = {"openpyxl", "xlwings", "xlsxwriter", "fastexcel", "python_calamine", "pandas", "zipfile", "os",
                     "pathlib", "io", "shutil", "tempfile", "subprocess", "sys", "uno"}
FORBIDDEN_CALLS = {"open", "print", "input"}


def test_core_imports_no_excel_library_and_does_no_io():
    offenders = []
    for path in sorted(CORE.glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in FORBIDDEN_CALLS:
                offenders.append(f"{path.name}:{node.lineno} calls {node.func.id}()")
                continue
            else:
                continue
            for name in names:
                if name.split(".")[0] in FORBIDDEN_MODULES:
                    offenders.append(f"{path.name}:{node.lineno} imports {name}")
    assert offenders == []


def test_the_check_itself_catches_an_offender(tmp_path):
    bad = "import openpyxl\nopen('x')\n"
    tree = ast.parse(bad)
    imports = [n for n in ast.walk(tree) if isinstance(n, ast.Import)]
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call)]
    assert imports[0].names[0].name in FORBIDDEN_MODULES and calls[0].func.id in FORBIDDEN_CALLS
