"""The outcomes chart: each instrument's totals over time, drawn with matplotlib.

Small multiples: one panel per instrument, each on its own scale (AUDIT 0-40, K10 10-50,
PHQ-9 0-27), all on one real time axis, with the instrument's risk zones shaded and named
(from the CodeSystem assessment-zone, the same bounds the scoring uses), every total
written beside its point, and axis labels; greys and labels carry the zones, so the chart
reads when printed in black and white.

matplotlib draws it (date ticks, layout, text) and writes SVG; the SVG is then marked for
programs: each panel is a <g class="series" data-instrument>, each zone a <g class="band"
data-zone data-low data-high>, each point a <g class="point" data-date data-total
data-zone> with a <title>. Text stays text (svg.fonttype none), so it can be searched and
read out.
"""

from __future__ import annotations

import datetime as dt
import io
import textwrap
import xml.etree.ElementTree as ET
from functools import cache
from typing import Any, Final

from app.api.pictures._common import SVG_NS, done
from schemas.conformance import code_system

# Instrument: title, scale, band set (K10's ABS bands when its points were scored on them).
INSTRUMENTS: Final = {
    "audit": ("AUDIT: alcohol use", (0, 40)),
    "k10": ("K10: psychological distress", (10, 50)),
    "phq9": ("PHQ-9: depression", (0, 27)),
}
# Light to dark, green to red: distinct in colour and, printed, in grey.
_SHADES: Final = ("#e6f2df", "#fbf2cc", "#f8dfbf", "#f2c6b6", "#e9acac")
_INK: Final = "#1d2b53"
_DPI: Final = 96


@cache
def _matplotlib() -> Any:
    """matplotlib, imported on first use (it is slow to import) and set for SVG: text as
    text, ids that do not change from run to run. Only pictures use it in this process."""
    import matplotlib

    matplotlib.rcParams.update(
        {
            "svg.fonttype": "none",
            "svg.hashsalt": "casebridge",
            "font.family": "sans-serif",
            "font.sans-serif": ["DejaVu Sans", "Verdana", "Arial"],
            "font.size": 10,
        }
    )
    return matplotlib


def bands(instrument: str, points: list[dict[str, Any]]) -> list[tuple[str, str, int, int]]:
    """The instrument's risk zones (code, label, low, high), lowest first."""
    band_set = instrument
    if instrument == "k10" and any(str(p.get("zone") or "").startswith("k10-abs") for p in points):
        band_set = "k10-abs"
    found = []
    for concept in code_system("assessment-zone")["concept"]:
        props = {
            p["code"]: next(v for k, v in p.items() if k != "code") for p in concept["property"]
        }
        if props["instrument"] == band_set:
            label = str(concept["display"]).split(": ", 1)[-1]
            found.append((concept["code"], label, int(props["low"]), int(props["high"])))
    return sorted(found, key=lambda band: band[2])


def _shades(count: int) -> list[str]:
    if count <= 1:
        return list(_SHADES[:1])
    return [_SHADES[round(i * (len(_SHADES) - 1) / (count - 1))] for i in range(count)]


def _span(days: list[dt.date]) -> tuple[dt.date, dt.date]:
    """The time axis: the assessments' dates with a margin (a month around a single one)."""
    first, last = min(days), max(days)
    margin = max(dt.timedelta(days=10), (last - first) * 0.06)
    if first == last:
        margin = dt.timedelta(days=30)
    return first - margin, last + margin


def outcomes_svg(series: dict[str, list[dict[str, Any]]]) -> str:
    """The chart of CaseService.outcomes(): {instrument: [{date, total, zone}]}."""
    _matplotlib()
    from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
    from matplotlib.figure import Figure
    from matplotlib.transforms import blended_transform_factory

    order = [i for i in INSTRUMENTS if i in series] + sorted(set(series) - set(INSTRUMENTS))
    if not order:
        figure = Figure(figsize=(8, 2), dpi=_DPI)
        figure.text(0.5, 0.5, "No scored assessments yet", ha="center", va="center", fontsize=14)
        return _marked(figure, {}, "Assessment scores over time: none yet")
    height = 1.2 + 2.5 * len(order)
    figure = Figure(figsize=(8.5, height), dpi=_DPI)
    axes = figure.subplots(len(order), 1, sharex=True, squeeze=False)[:, 0]
    figure.subplots_adjust(
        left=0.09, right=0.70, top=1 - 0.75 / height, bottom=0.6 / height, hspace=0.45
    )
    figure.suptitle(
        "Assessment scores over time",
        fontsize=13,
        fontweight="bold",
        x=0.09,
        y=1 - 0.2 / height,
        ha="left",
    )
    days = [dt.date.fromisoformat(p["date"]) for points in series.values() for p in points]
    start, end = _span(days)
    marks: dict[str, dict[str, str]] = {}
    for ax, instrument in zip(axes, order, strict=True):
        points = series[instrument]
        title, scale = INSTRUMENTS.get(
            instrument, (instrument.upper(), (0, max(p["total"] for p in points)))
        )
        low, high = scale
        ax.set_gid(f"series-{instrument}")
        marks[f"series-{instrument}"] = {"class": "series", "data-instrument": instrument}
        ax.set_title(f"{title} (scale {low}\u2013{high})", loc="left", fontsize=11)
        ax.set_ylim(low - 0.5, high + 0.5)
        ax.set_xlim(start, end)
        ax.set_ylabel("Total score")
        ax.grid(color="#999999", linewidth=0.5, linestyle=":")
        ax.set_axisbelow(True)
        zones = bands(instrument, points)
        edge = blended_transform_factory(ax.transAxes, ax.transData)
        for (code, label, zone_low, zone_high), shade in zip(
            zones, _shades(len(zones)), strict=True
        ):
            gid = f"band-{code}"
            ax.axhspan(zone_low - 0.5, zone_high + 0.5, color=shade, zorder=0, gid=gid)
            marks[gid] = {
                "class": "band",
                "data-zone": code,
                "data-low": str(zone_low),
                "data-high": str(zone_high),
                "title": f"{label}: {zone_low}\u2013{zone_high}",
            }
            ax.text(
                1.015,
                (zone_low + zone_high) / 2,
                textwrap.shorten(f"{label} {zone_low}\u2013{zone_high}", 34, placeholder="…"),
                transform=edge,
                va="center",
                fontsize=8.5,
                color="#333333",
            )
        xs = [dt.date.fromisoformat(p["date"]) for p in points]
        ys = [p["total"] for p in points]
        ax.plot(xs, ys, color=_INK, linewidth=1.8, zorder=3)
        for index, (x, point) in enumerate(zip(xs, points, strict=True)):
            gid = f"point-{instrument}-{index}"
            ax.plot(
                [x],
                [point["total"]],
                marker="o",
                markersize=6,
                color=_INK,
                markeredgecolor="white",
                zorder=4,
                gid=gid,
            )
            ax.annotate(
                str(point["total"]),
                (x, point["total"]),
                textcoords="offset points",
                # Above the point; below it at the top of the scale, clear of the title.
                xytext=(0, -15 if point["total"] > high - (high - low) * 0.12 else 7),
                ha="center",
                fontsize=9,
                fontweight="bold",
                color=_INK,
            )
            marks[gid] = {
                "class": "point",
                "data-date": point["date"],
                "data-total": str(point["total"]),
                "data-zone": str(point.get("zone") or ""),
                "title": f"{title}, {point['date']}: {point['total']}",
            }
    locator = AutoDateLocator(minticks=3, maxticks=9)  # type: ignore[no-untyped-call]
    axes[-1].xaxis.set_major_locator(locator)
    # Months with their year ("Sep 2025"): a printed chart has no tooltip to ask.
    formats = ["%Y", "%b %Y", "%d %b", "%H:%M", "%H:%M", "%S.%f"]
    axes[-1].xaxis.set_major_formatter(
        ConciseDateFormatter(  # type: ignore[no-untyped-call]
            locator, formats=formats, zero_formats=formats, show_offset=False
        )
    )
    axes[-1].set_xlabel("Date of assessment")
    return _marked(figure, marks, "Assessment scores over time")


def _marked(figure: Any, marks: dict[str, dict[str, str]], title: str) -> str:
    """The figure as SVG, with the marks (attributes and titles) on the groups of those
    ids, and a title for the whole chart."""
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", metadata={"Date": None}, facecolor="white")
    root = ET.fromstring(buffer.getvalue())
    for metadata in root.findall(f"{{{SVG_NS}}}metadata"):
        root.remove(metadata)
    for side in ("width", "height"):  # points to pixels: some renderers take no units
        root.set(side, f"{float(root.get(side, '0').removesuffix('pt')) * 96 / 72:.0f}")
    for element in root.iter(f"{{{SVG_NS}}}g"):
        attributes = marks.get(element.get("id", ""))
        if attributes is None:
            continue
        for key, value in attributes.items():
            if key == "title":
                heading = ET.Element(f"{{{SVG_NS}}}title")
                heading.text = value
                element.insert(0, heading)
            else:
                element.set(key, value)
    heading = ET.Element(f"{{{SVG_NS}}}title")
    heading.text = title
    root.insert(0, heading)
    root.set("font-family", "DejaVu Sans, Verdana, Arial, sans-serif")
    return done(root)


__all__ = ["INSTRUMENTS", "bands", "outcomes_svg"]
