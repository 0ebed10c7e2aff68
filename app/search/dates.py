"""FHIR date search values as half-open ranges (spec search.html#date)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone

_DATE_RE = re.compile(
    r"^(?P<year>\d{4})(?:-(?P<month>\d{2})(?:-(?P<day>\d{2})"
    r"(?:T(?P<hour>\d{2}):(?P<minute>\d{2})(?::(?P<second>\d{2})(?:\.(?P<frac>\d{1,9}))?)?"
    r"(?P<tz>Z|[+-]\d{2}:\d{2})?)?)?)?$",
    re.ASCII,
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
    try:
        return _to_range(match.groupdict())
    except OverflowError as exc:
        raise ValueError(f"{value!r} is outside the supported range of dates") from exc
    except ValueError as exc:  # month 13, hour 25, offset +99:00 ...
        raise ValueError(f"{value!r} is not a valid date or time") from exc


def _to_range(parts: dict[str, str | None]) -> DateRange:
    tz = UTC
    offset = parts["tz"]
    if offset and offset != "Z":
        sign = 1 if offset[0] == "+" else -1
        tz = timezone(sign * timedelta(hours=int(offset[1:3]), minutes=int(offset[4:6])))
    frac = parts["frac"] or ""
    low = datetime(
        int(parts["year"] or 0),
        int(parts["month"] or 1),
        int(parts["day"] or 1),
        int(parts["hour"] or 0),
        int(parts["minute"] or 0),
        int(parts["second"] or 0),
        int((frac + "000000")[:6]) if frac else 0,
        tzinfo=tz,
    )
    try:
        high = _upper(low, parts, frac)
    except (OverflowError, ValueError):
        # "lt9999-12-31" is a common way to say "any time": clamp rather than refuse.
        high = datetime.max.replace(tzinfo=UTC)
    return DateRange(_utc(low), _utc(high))


def _utc(moment: datetime) -> datetime:
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        # Only the first and last days of the calendar can leave it when shifted to UTC.
        limit = datetime.min if moment.year == datetime.min.year else datetime.max
        return limit.replace(tzinfo=UTC)


def _upper(low: datetime, parts: dict[str, str | None], frac: str) -> datetime:
    if parts["month"] is None:
        high = low.replace(year=low.year + 1)
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
    return high
