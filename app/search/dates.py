"""FHIR date search values as half-open ranges (spec search.html#date)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone

_DATE_RE = re.compile(
    r"^(?P<year>\d{4})(?:-(?P<month>\d{2})(?:-(?P<day>\d{2})"
    r"(?:T(?P<hour>\d{2}):(?P<minute>\d{2})(?::(?P<second>\d{2})(?:\.(?P<frac>\d{1,9}))?)?"
    r"(?P<tz>Z|[+-]\d{2}:\d{2})?)?)?)?$"
)


@dataclass(frozen=True, slots=True)
class DateRange:
    """[low, high): every instant the written value could mean, at its precision."""

    low: datetime
    high: datetime


def _add_months(moment: datetime, months: int) -> datetime:
    total = moment.month - 1 + months
    return moment.replace(year=moment.year + total // 12, month=total % 12 + 1)


def parse_date_range(value: str) -> DateRange:
    """Parse a FHIR date/dateTime/instant search value; ValueError when malformed."""
    match = _DATE_RE.match(value)
    if match is None:
        raise ValueError(f"{value!r} is not a FHIR date, dateTime or instant")
    parts = match.groupdict()
    tz = UTC
    if parts["tz"] and parts["tz"] != "Z":
        sign = 1 if parts["tz"][0] == "+" else -1
        hours, minutes = int(parts["tz"][1:3]), int(parts["tz"][4:6])
        tz = timezone(sign * timedelta(hours=hours, minutes=minutes))
    year = int(parts["year"])
    month = int(parts["month"] or 1)
    day = int(parts["day"] or 1)
    hour = int(parts["hour"] or 0)
    minute = int(parts["minute"] or 0)
    second = int(parts["second"] or 0)
    frac = parts["frac"] or ""
    micro = int((frac + "000000")[:6]) if frac else 0
    low = datetime(year, month, day, hour, minute, second, micro, tzinfo=tz)
    if parts["month"] is None:
        high = low.replace(year=year + 1)
    elif parts["day"] is None:
        high = _add_months(low, 1)
    elif parts["hour"] is None:
        high = low + timedelta(days=1)
    elif parts["second"] is None:
        high = low + timedelta(minutes=1)
    elif not frac:
        high = low + timedelta(seconds=1)
    else:
        high = low + timedelta(microseconds=10 ** max(0, 6 - len(frac)))
    return DateRange(low.astimezone(UTC), high.astimezone(UTC))
