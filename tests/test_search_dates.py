"""Date search values as precision ranges (spec search.html#date)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from app.search.dates import parse_date_range


def _dt(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0, us: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, us, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "low", "high"),
    [
        pytest.param("2026", _dt(2026, 1, 1), _dt(2027, 1, 1), id="year"),
        pytest.param("2026-12", _dt(2026, 12, 1), _dt(2027, 1, 1), id="december"),
        pytest.param("2026-02-28", _dt(2026, 2, 28), _dt(2026, 3, 1), id="day"),
        pytest.param(
            "2026-02-28T10:30", _dt(2026, 2, 28, 10, 30), _dt(2026, 2, 28, 10, 31), id="minute"
        ),
        pytest.param(
            "2026-02-28T10:30:05Z",
            _dt(2026, 2, 28, 10, 30, 5),
            _dt(2026, 2, 28, 10, 30, 6),
            id="second",
        ),
        pytest.param(
            "2026-02-28T10:30:05.25+10:00",
            _dt(2026, 2, 28, 0, 30, 5, 250000),
            _dt(2026, 2, 28, 0, 30, 5, 260000),
            id="fraction-offset",
        ),
    ],
)
def test_ranges(value: str, low: datetime, high: datetime) -> None:
    rng = parse_date_range(value)
    assert (rng.low, rng.high) == (low, high)


@pytest.mark.parametrize("value", ["26-01-01", "2026-13-01", "2026-01-01T25:00", "yesterday", ""])
def test_malformed(value: str) -> None:
    with pytest.raises(ValueError):
        parse_date_range(value)
