"""Pictures of a case as SVG: outcome charts, the ecomap and the genogram.

Pure functions from FHIR JSON (gathered by CaseService) to SVG text, built with
xml.etree.ElementTree so every name is escaped. Each person is a <g class="person"> with
data-ref (the FHIR reference) and a <title>; each connection a <line> or <polyline> with
class="link" and data-from / data-to / data-kind, so the pictures can be read by programs
as well as people.

Genogram symbols (McGoldrick and Gerson): square = male, circle = female, diamond = other
or unknown, a cross over the symbol = deceased, a double outline = the client; a horizontal
line joins partners, lines run down from parents to children.
Ecomap (Hartman 1978): the client in the centre; strong ties thick, moderate ties plain,
weak ties dashed, stressful ties as a zigzag.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from typing import Any, Final

from app.services.usecases.cases import Network

_NS: Final = "http://www.w3.org/2000/svg"
ROLE_CODE: Final = "http://terminology.hl7.org/CodeSystem/v3-RoleCode"
# Generation of each relationship relative to the client (0), and the side for grandparents.
GENERATION: Final = {
    "GRMTH": -2,
    "GRFTH": -2,
    "GRPRN": -2,
    "MGRMTH": -2,
    "MGRFTH": -2,
    "PGRMTH": -2,
    "PGRFTH": -2,
    "MTH": -1,
    "FTH": -1,
    "PRN": -1,
    "AUNT": -1,
    "UNCLE": -1,
    "SIB": 0,
    "SIS": 0,
    "BRO": 0,
    "SPS": 0,
    "DOMPART": 0,
    "COUSN": 0,
    "CHILD": 1,
    "DAU": 1,
    "SON": 1,
}
_SIZE: Final = 36


def _svg(width: int, height: int, title: str) -> ET.Element:
    root = ET.Element(
        "svg",
        {
            "xmlns": _NS,
            "width": str(width),
            "height": str(height),
            "viewBox": f"0 0 {width} {height}",
            "font-family": "sans-serif",
            "font-size": "12",
        },
    )
    ET.SubElement(root, "title").text = title
    return root


def _text(parent: ET.Element, x: float, y: float, value: str, **attrs: str) -> None:
    element = ET.SubElement(
        parent, "text", {"x": f"{x:.1f}", "y": f"{y:.1f}", "text-anchor": "middle", **attrs}
    )
    element.text = value


def _done(root: ET.Element) -> str:
    return ET.tostring(root, encoding="unicode")


# -- shared people helpers ---------------------------------------------------------------------
def _relationship(resource: dict[str, Any]) -> str | None:
    concepts = resource.get("relationship")
    if isinstance(concepts, dict):  # FamilyMemberHistory.relationship is one concept
        concepts = [concepts]
    for concept in concepts or []:
        for coding in concept.get("coding", []):
            if coding.get("system") == ROLE_CODE:
                return str(coding["code"])
    return None


def _name(resource: dict[str, Any]) -> str:
    name = resource.get("name")
    if isinstance(name, str):
        return name
    first = (name or [{}])[0]
    return (
        first.get("text")
        or " ".join([*first.get("given", []), first.get("family", "")]).strip()
        or "unnamed"
    )


def _gender(resource: dict[str, Any]) -> str:
    gender = resource.get("gender")
    if gender is None:
        for coding in (resource.get("sex") or {}).get("coding", []):
            gender = coding.get("code")
    relationship = _relationship(resource) or ""
    if gender not in ("male", "female"):
        if relationship in ("MTH", "SIS", "DAU", "GRMTH", "MGRMTH", "PGRMTH", "AUNT"):
            gender = "female"
        elif relationship in ("FTH", "BRO", "SON", "GRFTH", "MGRFTH", "PGRFTH", "UNCLE"):
            gender = "male"
    return str(gender or "unknown")


def _deceased(resource: dict[str, Any]) -> bool:
    return any(k.startswith("deceased") and resource[k] not in (False, None) for k in resource)


def _symbol(
    parent: ET.Element, person: dict[str, Any], x: float, y: float, *, client: bool
) -> None:
    """A genogram symbol centred on (x, y)."""
    half = _SIZE / 2
    style = {"fill": "white", "stroke": "black", "stroke-width": "2"}
    gender = person["gender"]
    outlines = [0, 4] if client else [0]
    for grow in outlines:
        h = half + grow
        if gender == "male":
            ET.SubElement(
                parent,
                "rect",
                {
                    "class": "male",
                    "x": f"{x - h:.1f}",
                    "y": f"{y - h:.1f}",
                    "width": f"{2 * h:.1f}",
                    "height": f"{2 * h:.1f}",
                    **style,
                },
            )
        elif gender == "female":
            ET.SubElement(
                parent,
                "circle",
                {"class": "female", "cx": f"{x:.1f}", "cy": f"{y:.1f}", "r": f"{h:.1f}", **style},
            )
        else:
            points = (
                f"{x:.1f},{y - h:.1f} {x + h:.1f},{y:.1f} {x:.1f},{y + h:.1f} {x - h:.1f},{y:.1f}"
            )
            ET.SubElement(parent, "polygon", {"class": "other", "points": points, **style})
        style = {**style, "fill": "none"}
    if person["deceased"]:
        for dx in (-1, 1):
            ET.SubElement(
                parent,
                "line",
                {
                    "class": "deceased",
                    "x1": f"{x - dx * half:.1f}",
                    "y1": f"{y - half:.1f}",
                    "x2": f"{x + dx * half:.1f}",
                    "y2": f"{y + half:.1f}",
                    "stroke": "black",
                    "stroke-width": "2",
                },
            )


def _link(
    parent: ET.Element, kind: str, a: dict[str, Any], b: dict[str, Any], **attrs: str
) -> None:
    ET.SubElement(
        parent,
        "line",
        {
            "class": "link",
            "data-kind": kind,
            "data-from": a["ref"],
            "data-to": b["ref"],
            "x1": f"{a['x']:.1f}",
            "y1": f"{a['y']:.1f}",
            "x2": f"{b['x']:.1f}",
            "y2": f"{b['y']:.1f}",
            "stroke": "black",
            "stroke-width": "2",
            **attrs,
        },
    )


# -- ecomap ------------------------------------------------------------------------------------
_TIE_STYLE: Final = {
    "strong": {"stroke-width": "5"},
    "moderate": {"stroke-width": "2"},
    "weak": {"stroke-width": "2", "stroke-dasharray": "6 6"},
    "stressful": {"stroke-width": "2", "stroke": "#b5472f"},
}


def _tie(parent: ET.Element, centre: dict[str, Any], node: dict[str, Any], strength: str) -> None:
    attrs = {
        "class": "link",
        "data-kind": node["kind"],
        "data-from": centre["ref"],
        "data-to": node["ref"],
        "data-strength": strength,
        "fill": "none",
        "stroke": "black",
        **_TIE_STYLE.get(strength, _TIE_STYLE["moderate"]),
    }
    if strength == "stressful":
        # A zigzag: the conventional mark of a stressful tie.
        steps = 10
        points = []
        dx, dy = node["x"] - centre["x"], node["y"] - centre["y"]
        length = math.hypot(dx, dy) or 1
        nx, ny = -dy / length * 6, dx / length * 6
        for step in range(steps + 1):
            sign = 0 if step in (0, steps) else (1 if step % 2 else -1)
            points.append(
                f"{centre['x'] + dx * step / steps + nx * sign:.1f},"
                f"{centre['y'] + dy * step / steps + ny * sign:.1f}"
            )
        ET.SubElement(parent, "polyline", {"points": " ".join(points), **attrs})
        return
    ET.SubElement(
        parent,
        "line",
        {
            "x1": f"{centre['x']:.1f}",
            "y1": f"{centre['y']:.1f}",
            "x2": f"{node['x']:.1f}",
            "y2": f"{node['y']:.1f}",
            **attrs,
        },
    )


def ecomap_svg(network: Network) -> str:
    """The client in the centre; family and informal supports, the care team, and every
    agency serving the client (from referrals, with their Task status) around them."""
    client = network.client
    centre: dict[str, Any] = {
        "ref": f"Patient/{client['id']}",
        "name": _name(client),
        "x": 320.0,
        "y": 320.0,
    }
    nodes: list[dict[str, Any]] = []
    for person in network.supports:
        strength = "moderate"
        for extension in person.get("extension", []):
            if extension.get("url", "").endswith("/connection-strength"):
                strength = extension["valueCoding"]["code"]
        nodes.append(
            {
                "ref": f"RelatedPerson/{person['id']}",
                "name": _name(person),
                "kind": "support",
                "strength": strength,
                "label": _relationship(person) or "",
            }
        )
    for participant in network.care_team:
        member = participant.get("member") or {}
        if not isinstance(member.get("reference"), str):
            continue
        role = (participant.get("role") or [{}])[0].get("text", "")
        nodes.append(
            {
                "ref": member["reference"],
                "name": member.get("display") or member["reference"],
                "kind": "care-team",
                "strength": "strong",
                "label": role,
            }
        )
    for request, task in network.referrals:
        for performer in request.get("performer", []) or [{}]:
            agency = performer.get("reference")
            if not agency:
                continue
            status = (task or {}).get("status") or request.get("status", "")
            strength = {
                "completed": "strong",
                "in-progress": "strong",
                "accepted": "moderate",
                "rejected": "stressful",
                "failed": "stressful",
                "cancelled": "weak",
            }.get(status, "weak")
            nodes.append(
                {
                    "ref": agency,
                    "name": performer.get("display") or agency,
                    "kind": "agency",
                    "strength": strength,
                    "label": f"referral {status}",
                }
            )
    size = 640
    root = _svg(size, size, f"Ecomap of {centre['name']}")
    links = ET.SubElement(root, "g", {"class": "links"})
    for index, node in enumerate(nodes):
        angle = 2 * math.pi * index / max(len(nodes), 1) - math.pi / 2
        node["x"] = centre["x"] + 230 * math.cos(angle)
        node["y"] = centre["y"] + 230 * math.sin(angle)
        _tie(links, centre, node, node["strength"])
    me = ET.SubElement(root, "g", {"class": "person client", "data-ref": centre["ref"]})
    ET.SubElement(me, "title").text = centre["name"]
    ET.SubElement(
        me,
        "circle",
        {
            "cx": "320",
            "cy": "320",
            "r": "50",
            "fill": "#f3f0e0",
            "stroke": "black",
            "stroke-width": "3",
        },
    )
    _text(me, 320, 324, centre["name"])
    for node in nodes:
        group = ET.SubElement(
            root, "g", {"class": f"person {node['kind']}", "data-ref": node["ref"]}
        )
        ET.SubElement(group, "title").text = f"{node['name']} ({node['label']})"
        ET.SubElement(
            group,
            "circle",
            {
                "cx": f"{node['x']:.1f}",
                "cy": f"{node['y']:.1f}",
                "r": "40",
                "fill": "white",
                "stroke": "black",
            },
        )
        _text(group, node["x"], node["y"], node["name"][:22])
        _text(group, node["x"], node["y"] + 14, node["label"][:22], fill="#555")
    return _done(root)


__all__ = ["ecomap_svg"]
