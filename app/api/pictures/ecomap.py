"""The ecomap (Hartman 1978): the client in the centre and, around them, the people and
systems they deal with, each tie drawn by how it feels and which way energy flows.

Ties: strong a thick line, moderate a plain line, tenuous (weak) a dashed line, stressful a
line crossed by hatches; an arrowhead at the end energy flows to (towards the client, away
from them, or both). Around the client, clockwise from the top: family and friends
(RelatedPerson), informal systems (work, school, a faith community, a self-help group:
Group), the care team, and the agencies serving the client, one circle per agency however
many referrals it has had (the latest referral's Task sets the tie). Everyone is named:
agencies and workers by the names stored for them.

The layout is written here: an ecomap is a star, and the convention is a circle of systems
around the client, grouped by kind; a general graph-layout library would only put the same
circle back (networkx's shell layout) or scatter it (force layouts), and could not size the
circle to the labels.
"""

from __future__ import annotations

import math
import textwrap
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Any, Final

from app.api.pictures._common import (
    done,
    extension,
    extension_code,
    line,
    name,
    relationship,
    svg,
    text,
)
from app.api.pictures.genogram import WORDS
from app.services.usecases.cases import Network

RELATION_WORDS: Final = {**WORDS, "FRND": "friend", "NBOR": "neighbour", "ROOM": "roommate"}
SYSTEM_WORDS: Final = {
    "work": "work",
    "school": "school",
    "faith": "faith community",
    "self-help": "self-help group",
    "recreation": "recreation",
    "community": "community group",
}
# A referral's state as a tie: its strength, and whether services flow to the client yet.
REFERRAL_TIES: Final = {
    "completed": ("strong", "to-client"),
    "in-progress": ("strong", "to-client"),
    "accepted": ("moderate", "to-client"),
    "ready": ("moderate", None),
    "received": ("weak", None),
    "requested": ("weak", None),
    "draft": ("weak", None),
    "on-hold": ("weak", None),
    "rejected": ("stressful", None),
    "failed": ("stressful", None),
    "cancelled": ("weak", None),
    "entered-in-error": ("weak", None),
}
_FILLS: Final = {
    "support": "#fdf0d5",
    "system": "#e2f0dc",
    "care-team": "#dfeaf6",
    "agency": "#ece3f4",
}
_KIND_WORDS: Final = {
    "support": "family and friends",
    "system": "informal systems",
    "care-team": "care team",
    "agency": "agencies",
}
_NODE: Final = 56  # radius of a system's circle
_CLIENT: Final = 62
_MARGIN: Final = 30


@dataclass
class Node:
    ref: str
    name: str
    kind: str  # support, system, care-team, agency
    label: str
    strength: str
    flow: str | None
    x: float = 0.0
    y: float = 0.0


def _words(ref: str) -> str:
    """A readable stand-in for a name nobody stored: the id of the reference."""
    words = ref.split("/", 1)[-1].replace("-", " ").replace("_", " ").strip()
    return words[:1].upper() + words[1:]


def nodes(network: Network) -> list[Node]:
    """Everyone around the client, in drawing order (see the module docstring)."""
    found: list[Node] = []
    for person in network.supports:
        deceased = extension(person, "deceased") or {}
        if (
            person.get("active") is False
            or deceased.get("valueBoolean")
            or deceased.get("valueDate")
        ):
            continue  # the ecomap shows the ties the client has now
        code = relationship(person) or ""
        found.append(
            Node(
                ref=f"RelatedPerson/{person['id']}",
                name=name(person),
                kind="support",
                label=RELATION_WORDS.get(code, code.lower() or "support"),
                strength=extension_code(person, "connection-strength") or "moderate",
                flow=extension_code(person, "energy-flow"),
            )
        )
    for group in network.systems:
        if group.get("active") is False:
            continue
        kind = next(
            (c.get("code") for c in (group.get("code") or {}).get("coding", [])), "community"
        )
        found.append(
            Node(
                ref=f"Group/{group['id']}",
                name=str(group.get("name") or SYSTEM_WORDS.get(kind, kind)),
                kind="system",
                label=SYSTEM_WORDS.get(str(kind), str(kind)),
                strength=extension_code(group, "connection-strength") or "moderate",
                flow=extension_code(group, "energy-flow"),
            )
        )
    seen: set[str] = set()
    for participant in network.care_team:
        member = participant.get("member") or {}
        ref = member.get("reference")
        if not isinstance(ref, str) or ref in seen:
            continue
        seen.add(ref)
        role = (participant.get("role") or [{}])[0].get("text", "") or "care team"
        found.append(
            Node(
                ref=ref,
                name=network.names.get(ref) or member.get("display") or _words(ref),
                kind="care-team",
                label=role,
                strength="moderate",
                flow="to-client",
            )
        )
    agencies: dict[str, list[tuple[dict[str, Any], str]]] = {}
    for request, task in network.referrals:
        status = str((task or {}).get("status") or request.get("status", ""))
        for performer in request.get("performer", []):
            ref = performer.get("reference")
            if isinstance(ref, str) and ref not in seen:
                agencies.setdefault(ref, []).append((request, status))
    for ref, referrals in agencies.items():
        referrals.sort(key=lambda r: (str(r[0].get("authoredOn", "")), str(r[0].get("id", ""))))
        latest = referrals[-1][1]
        strength, flow = REFERRAL_TIES.get(latest, ("weak", None))
        count = len(referrals)
        label = f"{count} referral{'s' if count > 1 else ''}, latest {latest.replace('-', ' ')}"
        display = next(
            (
                p.get("display")
                for r, _ in referrals
                for p in r.get("performer", [])
                if p.get("reference") == ref and p.get("display")
            ),
            None,
        )
        found.append(
            Node(
                ref=ref,
                name=network.names.get(ref) or display or _words(ref),
                kind="agency",
                label=label,
                strength=strength,
                flow=flow,
            )
        )
    return found


# -- drawing -----------------------------------------------------------------------------------
def _arrowhead(
    parent: ET.Element,
    tip: tuple[float, float],
    unit: tuple[float, float],
    size: float,
    towards: str,
) -> None:
    """A filled arrowhead with its tip at `tip`, pointing along `unit`."""
    ux, uy = unit
    bx, by = tip[0] - ux * size, tip[1] - uy * size
    px, py = -uy * size * 0.55, ux * size * 0.55
    points = f"{tip[0]:.1f},{tip[1]:.1f} {bx + px:.1f},{by + py:.1f} {bx - px:.1f},{by - py:.1f}"
    ET.SubElement(
        parent,
        "polygon",
        {"class": "arrow", "data-towards": towards, "points": points, "fill": "black"},
    )


def _tie(
    parent: ET.Element,
    start: tuple[float, float],
    end: tuple[float, float],
    strength: str,
    flow: str | None,
    **attrs: str,
) -> None:
    """A tie from start (the client's edge) to end (the system's edge)."""
    group = ET.SubElement(
        parent, "g", {"class": "link", "data-strength": strength, "data-flow": flow or "", **attrs}
    )
    (x1, y1), (x2, y2) = start, end
    length = math.hypot(x2 - x1, y2 - y1) or 1.0
    ux, uy = (x2 - x1) / length, (y2 - y1) / length
    head = 15.0 if strength == "strong" else 12.0
    # Leave room for arrowheads at the ends they point to.
    a = (x1 + ux * head, y1 + uy * head) if flow in ("to-client", "both") else (x1, y1)
    b = (x2 - ux * head, y2 - uy * head) if flow in ("from-client", "both") else (x2, y2)
    style: dict[str, str] = {"stroke": "black", "stroke-linecap": "butt"}
    if strength == "strong":
        style["stroke-width"] = "6"
    elif strength == "weak":
        style.update({"stroke-width": "2", "stroke-dasharray": "9 7"})
    else:
        style["stroke-width"] = "2"
    line(group, a[0], a[1], b[0], b[1], **{"class": f"tie {strength}", **style})
    if strength == "stressful":  # hatches across the line: -/-/-/-
        px, py = -uy, ux
        steps = int((length - 2 * head) // 16)
        for step in range(1, steps):
            cx, cy = x1 + ux * (head + 16 * step), y1 + uy * (head + 16 * step)
            line(
                group,
                cx - px * 7 - ux * 4,
                cy - py * 7 - uy * 4,
                cx + px * 7 + ux * 4,
                cy + py * 7 + uy * 4,
                **{"class": "hatch", "stroke-width": "2"},
            )
    if flow in ("to-client", "both"):
        _arrowhead(group, (x1, y1), (-ux, -uy), head, "client")
    if flow in ("from-client", "both"):
        _arrowhead(group, (x2, y2), (ux, uy), head, "system")


def _label(parent: ET.Element, x: float, y: float, title: str, detail: str) -> None:
    names = textwrap.wrap(title, 15)[:2] or [title]
    if len(textwrap.wrap(title, 15)) > 2:
        names[-1] = textwrap.shorten(names[-1] + " …", 15, placeholder="…")
    details = textwrap.wrap(detail, 19)[:2]
    rows = [(n, "bold") for n in names] + [(d, "detail") for d in details]
    top = y - (len(rows) - 1) * 13 / 2 + 4
    for index, (value, kind) in enumerate(rows):
        attrs = (
            {"font-weight": "bold", "font-size": "12"}
            if kind == "bold"
            else {"font-size": "10.5", "fill": "#333333"}
        )
        text(
            parent,
            x,
            top + 13 * index,
            value,
            **{"class": "name" if kind == "bold" else "detail", **attrs},
        )


def _legend(parent: ET.Element, x: float, y: float) -> None:
    group = ET.SubElement(parent, "g", {"class": "legend", "font-size": "11"})
    text(group, x, y, "Ties", **{"text-anchor": "start", "font-weight": "bold"})
    for index, (strength, words) in enumerate(
        [
            ("strong", "strong"),
            ("moderate", "moderate"),
            ("weak", "tenuous"),
            ("stressful", "stressful"),
        ]
    ):
        row = y + 20 + 20 * index
        _tie(group, (x, row), (x + 84, row), strength, None, **{"class": "legend-tie"})
        text(group, x + 94, row + 4, words, **{"text-anchor": "start"})
    row = y + 20 + 20 * 4
    _tie(group, (x, row), (x + 84, row), "moderate", "to-client", **{"class": "legend-tie"})
    text(group, x + 94, row + 4, "energy flows towards the arrow", **{"text-anchor": "start"})
    column = x + 310
    text(group, column, y, "Circles", **{"text-anchor": "start", "font-weight": "bold"})
    for index, (kind, fill) in enumerate(_FILLS.items()):
        row = y + 20 + 20 * index
        ET.SubElement(
            group,
            "circle",
            {
                "cx": f"{column + 8:.1f}",
                "cy": f"{row:.1f}",
                "r": "8",
                "fill": fill,
                "stroke": "black",
            },
        )
        text(group, column + 24, row + 4, _KIND_WORDS[kind], **{"text-anchor": "start"})


def ecomap_svg(network: Network) -> str:
    """The client's ecomap from what CaseService.network() gathers."""
    client = network.client
    centre_ref = f"Patient/{client['id']}"
    around = nodes(network)
    # The circle of systems: big enough that neighbours' circles do not touch.
    ring = max(250.0, len(around) * (2 * _NODE + 34) / (2 * math.pi))
    half = ring + _NODE + _MARGIN + 20
    size = 2 * half
    legend_height = 140
    root = svg(size, size + legend_height, f"Ecomap of {name(client)}")
    text(
        root,
        20,
        30,
        f"Ecomap of {name(client)}",
        **{"text-anchor": "start", "font-size": "16", "font-weight": "bold"},
    )
    cx = cy = half
    ties = ET.SubElement(root, "g", {"class": "links"})
    for index, node in enumerate(around):
        angle = 2 * math.pi * index / max(len(around), 1) - math.pi / 2
        node.x, node.y = cx + ring * math.cos(angle), cy + ring * math.sin(angle)
        ux, uy = math.cos(angle), math.sin(angle)
        _tie(
            ties,
            (cx + ux * (_CLIENT + 4), cy + uy * (_CLIENT + 4)),
            (node.x - ux * (_NODE + 4), node.y - uy * (_NODE + 4)),
            node.strength,
            node.flow,
            **{"data-kind": node.kind, "data-from": centre_ref, "data-to": node.ref},
        )
    me = ET.SubElement(root, "g", {"class": "person client", "data-ref": centre_ref})
    ET.SubElement(me, "title").text = f"{name(client)} (client)"
    ET.SubElement(
        me,
        "circle",
        {
            "cx": f"{cx:.1f}",
            "cy": f"{cy:.1f}",
            "r": str(_CLIENT),
            "fill": "white",
            "stroke": "black",
            "stroke-width": "3",
        },
    )
    ET.SubElement(
        me,
        "circle",
        {
            "cx": f"{cx:.1f}",
            "cy": f"{cy:.1f}",
            "r": str(_CLIENT - 6),
            "fill": "none",
            "stroke": "black",
            "stroke-width": "1.5",
        },
    )
    _label(me, cx, cy, name(client), "client")
    for node in around:
        group = ET.SubElement(root, "g", {"class": f"person {node.kind}", "data-ref": node.ref})
        ET.SubElement(group, "title").text = f"{node.name} ({node.label})"
        ET.SubElement(
            group,
            "circle",
            {
                "cx": f"{node.x:.1f}",
                "cy": f"{node.y:.1f}",
                "r": str(_NODE),
                "fill": _FILLS[node.kind],
                "stroke": "black",
                "stroke-width": "1.5",
            },
        )
        _label(group, node.x, node.y, node.name, node.label)
    if not around:
        text(
            root,
            cx,
            cy + _CLIENT + 30,
            "No supports, systems or agencies recorded yet",
            fill="#555555",
        )
    _legend(root, 30, size + 10)
    return done(root)


__all__ = ["REFERRAL_TIES", "Node", "ecomap_svg", "nodes"]
