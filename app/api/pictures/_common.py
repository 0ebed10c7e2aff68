"""What the pictures share: SVG building with ElementTree (every name escaped) and reading
people out of FHIR JSON (names, genders, relationships, dates)."""

from __future__ import annotations

import datetime as dt
import xml.etree.ElementTree as ET
from typing import Any, Final

SVG_NS: Final = "http://www.w3.org/2000/svg"
XLINK_NS: Final = "http://www.w3.org/1999/xlink"
ROLE_CODE: Final = "http://terminology.hl7.org/CodeSystem/v3-RoleCode"
FONT: Final = "DejaVu Sans, Verdana, Arial, sans-serif"

# Serialise SVG without ns0: prefixes (the registry is process-wide; only SVG uses these).
ET.register_namespace("", SVG_NS)
ET.register_namespace("xlink", XLINK_NS)


def svg(width: float, height: float, title: str) -> ET.Element:
    """An SVG root of this size with a <title> (read out by screen readers) and a white
    background (so a PNG of it prints)."""
    root = ET.Element(
        "svg",
        {
            "xmlns": SVG_NS,
            "width": f"{width:.0f}",
            "height": f"{height:.0f}",
            "viewBox": f"0 0 {width:.0f} {height:.0f}",
            "font-family": FONT,
            "font-size": "12",
        },
    )
    ET.SubElement(root, "title").text = title
    ET.SubElement(root, "rect", {"width": "100%", "height": "100%", "fill": "white"})
    return root


def text(parent: ET.Element, x: float, y: float, value: str, **attrs: str) -> ET.Element:
    element = ET.SubElement(
        parent, "text", {"x": f"{x:.1f}", "y": f"{y:.1f}", "text-anchor": "middle", **attrs}
    )
    element.text = value
    return element


def line(parent: ET.Element, x1: float, y1: float, x2: float, y2: float, **attrs: str) -> None:
    ET.SubElement(
        parent,
        "line",
        {
            "x1": f"{x1:.1f}",
            "y1": f"{y1:.1f}",
            "x2": f"{x2:.1f}",
            "y2": f"{y2:.1f}",
            "stroke": "black",
            "stroke-width": "2",
            **attrs,
        },
    )


def done(root: ET.Element) -> str:
    return ET.tostring(root, encoding="unicode")


def relationship(resource: dict[str, Any]) -> str | None:
    """The v3 RoleCode relationship to the client (RelatedPerson or FamilyMemberHistory)."""
    concepts = resource.get("relationship")
    if isinstance(concepts, dict):  # FamilyMemberHistory.relationship is one concept
        concepts = [concepts]
    for concept in concepts or []:
        for coding in concept.get("coding", []):
            if coding.get("system") == ROLE_CODE:
                return str(coding["code"])
    return None


def name(resource: dict[str, Any]) -> str:
    value = resource.get("name")
    if isinstance(value, str):
        return value
    first = (value or [{}])[0]
    return (
        first.get("text")
        or " ".join([*first.get("given", []), first.get("family", "")]).strip()
        or "unnamed"
    )


_FEMALE: Final = frozenset(
    {"MTH", "STPMTH", "SIS", "HSIS", "DAU", "WIFE", "GRMTH", "MGRMTH", "PGRMTH", "AUNT", "MAUNT"}
    | {"PAUNT"}
)
_MALE: Final = frozenset(
    {"FTH", "STPFTH", "BRO", "HBRO", "SON", "HUSB", "GRFTH", "MGRFTH", "PGRFTH", "UNCLE"}
    | {"MUNCLE", "PUNCLE"}
)


def gender(resource: dict[str, Any]) -> str:
    """male, female, other or unknown: the resource's gender (FamilyMemberHistory.sex),
    else what the relationship says (a mother is female)."""
    value = resource.get("gender")
    if value is None:
        for coding in (resource.get("sex") or {}).get("coding", []):
            value = coding.get("code")
    if value not in ("male", "female"):
        code = relationship(resource) or ""
        if code in _FEMALE:
            value = "female"
        elif code in _MALE:
            value = "male"
    return str(value or "unknown")


def extension(resource: dict[str, Any], slug: str) -> dict[str, Any] | None:
    """The project extension https://casebridge.org/fhir/StructureDefinition/{slug}."""
    for found in resource.get("extension", []):
        if str(found.get("url", "")).endswith(f"/StructureDefinition/{slug}"):
            return dict(found)
    return None


def extension_code(resource: dict[str, Any], slug: str) -> str | None:
    found = extension(resource, slug)
    return str(found["valueCoding"]["code"]) if found and "valueCoding" in found else None


def date(value: Any) -> dt.date | None:
    """A FHIR date or dateTime's day (None for a partial date such as a year alone)."""
    if not isinstance(value, str) or len(value) < 10:
        return None
    try:
        return dt.date.fromisoformat(value[:10])
    except ValueError:
        return None


def years(born: dt.date, until: dt.date) -> int:
    """Whole years from born to until (an age)."""
    return until.year - born.year - ((until.month, until.day) < (born.month, born.day))
