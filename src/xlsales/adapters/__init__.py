"""Adapters around the pure core: workbook files (read, write), live Excel (xlwings), the CLI."""
