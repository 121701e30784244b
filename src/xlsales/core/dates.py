"""Calendar helpers the rules speak in: months, month ends, windows."""

from __future__ import annotations

import calendar
import datetime as dt


def add_months(day: dt.date, months: int) -> dt.date:
    """Same day N months later (or earlier), clipped to the month's last day."""
    index = day.year * 12 + day.month - 1 + months
    year, month = divmod(index, 12)
    month += 1
    return dt.date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def month_start(day: dt.date) -> dt.date:
    return day.replace(day=1)


def month_end(day: dt.date) -> dt.date:
    return day.replace(day=calendar.monthrange(day.year, day.month)[1])


def month_label(day: dt.date) -> str:
    return f"{day.year:04d}-{day.month:02d}"


def previous_month_label(label: str) -> str:
    year, month = (int(x) for x in label.split("-"))
    return month_label(add_months(dt.date(year, month, 1), -1))


def window_start(evaluation_date: dt.date, months: int) -> dt.date:
    """First day of the N-month window that ends at (and includes) the evaluation date: for
    2026-06-30 and 3 months, 2026-04-01 (counted back from the day after, so month ends line up)."""
    return add_months(evaluation_date + dt.timedelta(days=1), -months)
