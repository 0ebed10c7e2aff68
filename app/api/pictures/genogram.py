"""The genogram: the client's family over three generations and more, by the conventions of
McGoldrick, Gerson and Petry (Genograms: Assessment and Treatment, 4th ed.).

Symbols: square male, circle female, diamond other or unknown; a cross over the symbol for
the deceased; a double outline for the client (the index person); the age inside a living
person's symbol, birth and death years below the name. Partners are joined by a horizontal
partnership line (dashed when living together unmarried), crossed by one slash when they
separated and two when they divorced; their children hang from one sibship line below it,
oldest on the left. A parent nobody recorded is drawn dashed, so the lines still meet.

The layout is written here rather than taken from a graph-layout library: layered layouts
(Sugiyama style, as in Graphviz dot or grandalf) draw an edge from each parent to each child
and know nothing of partnership or sibship lines, male-left/female-right couples, birth
order or partners kept side by side. A client-centred family has a fixed shape: each row
(grandparents, parents and their siblings, the client's generation, the client's children)
is put in an order that nests every sibship under its parents, so lines cannot cross; the
positions are then found by alternately centring children under their parents and parents
over their children, each row solved exactly for the least movement that keeps its order
and spacing (isotonic regression by pool-adjacent-violators).
"""

from __future__ import annotations

import datetime as dt
import itertools
import textwrap
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Any, Final

from app.api.pictures._common import (
    date,
    done,
    extension,
    extension_code,
    gender,
    line,
    name,
    relationship,
    svg,
    text,
    years,
)
from app.services.usecases.cases import Network

# Generation of each relationship relative to the client (0).
GENERATION: Final = {
    **dict.fromkeys(("GRMTH", "GRFTH", "GRPRN", "MGRMTH", "MGRFTH", "PGRMTH", "PGRFTH"), -2),
    **dict.fromkeys(("MTH", "FTH", "PRN", "STPMTH", "STPFTH"), -1),
    **dict.fromkeys(("AUNT", "UNCLE", "MAUNT", "MUNCLE", "PAUNT", "PUNCLE"), -1),
    **dict.fromkeys(("SIB", "SIS", "BRO", "HSIB", "HSIS", "HBRO", "COUSN"), 0),
    **dict.fromkeys(("SPS", "HUSB", "WIFE", "DOMPART", "SIGOTHR", "FMRSPS"), 0),
    **dict.fromkeys(("CHILD", "DAU", "SON"), 1),
}
WORDS: Final = {
    "self": "client",
    "MTH": "mother",
    "FTH": "father",
    "PRN": "parent",
    "STPMTH": "stepmother",
    "STPFTH": "stepfather",
    "SIB": "sibling",
    "SIS": "sister",
    "BRO": "brother",
    "HSIB": "half-sibling",
    "HSIS": "half-sister",
    "HBRO": "half-brother",
    "CHILD": "child",
    "DAU": "daughter",
    "SON": "son",
    "SPS": "spouse",
    "HUSB": "husband",
    "WIFE": "wife",
    "DOMPART": "partner",
    "SIGOTHR": "partner",
    "FMRSPS": "former spouse",
    "GRMTH": "grandmother",
    "GRFTH": "grandfather",
    "GRPRN": "grandparent",
    "MGRMTH": "grandmother (maternal)",
    "MGRFTH": "grandfather (maternal)",
    "PGRMTH": "grandmother (paternal)",
    "PGRFTH": "grandfather (paternal)",
    "AUNT": "aunt",
    "UNCLE": "uncle",
    "MAUNT": "aunt (maternal)",
    "MUNCLE": "uncle (maternal)",
    "PAUNT": "aunt (paternal)",
    "PUNCLE": "uncle (paternal)",
    "COUSN": "cousin",
}
# Drawn under the symbol: the side is already shown by the lines.
_SHORT: Final = {
    "GRMTH": "grandmother",
    "GRFTH": "grandfather",
    "MGRMTH": "grandmother",
    "MGRFTH": "grandfather",
    "PGRMTH": "grandmother",
    "PGRFTH": "grandfather",
    "MAUNT": "aunt",
    "PAUNT": "aunt",
    "MUNCLE": "uncle",
    "PUNCLE": "uncle",
}
_PARTNERS: Final = ("SPS", "HUSB", "WIFE", "DOMPART", "SIGOTHR")
_COHABITING: Final = ("DOMPART", "SIGOTHR")
SIZE: Final = 40  # a symbol's width and height
GAP: Final = 132  # least distance between neighbours' centres (their labels fit between)
_APART: Final = 36  # more between neighbours of different sibships
_PITCH: Final = 185  # rows
_TOP: Final = 110
_MARGIN: Final = 80


@dataclass(eq=False)
class Member:
    """One symbol: a recorded person, or a placeholder for a parent nobody recorded."""

    ref: str
    name: str
    gender: str
    code: str
    born: dt.date | None = None
    died: dt.date | None = None
    deceased: bool = False
    age: int | None = None
    separation: str | None = None
    parent: str | None = None
    placeholder: bool = False
    order: int = 0
    x: float = 0.0
    row: int = 0

    @property
    def client(self) -> bool:
        return self.code == "self"


@dataclass(eq=False)
class Union:
    """Two partners (left and right as drawn) and their children, oldest first."""

    key: str
    left: Member
    right: Member
    status: str  # married, cohabiting, separated, divorced
    children: list[Member] = field(default_factory=list)

    @property
    def anchor(self) -> float:
        return (self.left.x + self.right.x) / 2


@dataclass
class Family:
    """Rows from the eldest generation down, each in drawing order, and the unions."""

    rows: list[list[Member]]
    unions: list[Union]


# -- reading the records -----------------------------------------------------------------------
def _member(resource: dict[str, Any], code: str, order: int, today: dt.date) -> Member:
    """A RelatedPerson (the project's deceased, separation and parent extensions) or a
    FamilyMemberHistory (bornDate, deceased[x], age[x]) as a member."""
    born = date(resource.get("birthDate") or resource.get("bornDate"))
    died_ext = extension(resource, "deceased") or {}
    died = date(died_ext.get("valueDate") or resource.get("deceasedDate"))
    deceased = bool(
        died
        or died_ext.get("valueBoolean")
        or resource.get("deceasedBoolean")
        or resource.get("deceasedDateTime")
        or resource.get("deceasedAge")
        or resource.get("deceasedString")
        or resource.get("deceasedRange")
    )
    died = died or date(resource.get("deceasedDateTime"))
    age = None
    if born is not None:
        age = years(born, died or today) if (died or not deceased) else None
    elif isinstance((resource.get("deceasedAge") or {}).get("value"), int | float):
        age = int(resource["deceasedAge"]["value"])
    elif not deceased and isinstance((resource.get("ageAge") or {}).get("value"), int | float):
        age = int(resource["ageAge"]["value"])
    parent = ((extension(resource, "parent") or {}).get("valueReference") or {}).get("reference")
    return Member(
        ref=f"{resource['resourceType']}/{resource['id']}",
        name=name(resource),
        gender=gender(resource),
        code=code,
        born=born,
        died=died,
        deceased=deceased,
        age=age,
        separation=extension_code(resource, "separation"),
        parent=parent if isinstance(parent, str) else None,
        order=order,
    )


def _placeholder(role: str, sex: str, key: str) -> Member:
    return Member(
        ref=f"unrecorded:{key}", name="not recorded", gender=sex, code=role, placeholder=True
    )


def _by_birth(members: list[Member]) -> list[Member]:
    return sorted(members, key=lambda m: (m.born or dt.date.max, m.order))


def _status(*partners: Member, default: str = "married") -> str:
    marks = {p.separation for p in partners}
    for status in ("divorced", "separated"):
        if status in marks:
            return status
    return default


def family(network: Network) -> Family:
    """The client's family as rows and unions (see the module's docstring)."""
    today = network.today
    client = _member(network.client, "self", 0, today)
    codes: dict[str, list[Member]] = {}
    for order, resource in enumerate([*network.supports, *network.family], start=1):
        code = relationship(resource)
        if code in GENERATION:
            codes.setdefault(code, []).append(_member(resource, code, order, today))

    def take(*wanted: str) -> list[Member]:
        return [m for code in wanted for m in codes.get(code, [])]

    def one(code: str) -> Member | None:
        found = codes.get(code)
        return found[0] if found else None

    loose: list[Member] = []
    parents = take("PRN")
    father = one("FTH") or (parents.pop(0) if parents else None)
    mother = one("MTH") or (parents.pop(0) if parents else None)
    loose += take("FTH")[1:] + take("MTH")[1:] + parents
    # Grandparents by side: paternal, maternal; a grandparent of unknown side takes the
    # first free place.
    sides: list[dict[str, Member | None]] = [
        {"male": one("PGRFTH"), "female": one("PGRMTH")},
        {"male": one("MGRFTH"), "female": one("MGRMTH")},
    ]
    loose += take("PGRFTH")[1:] + take("PGRMTH")[1:] + take("MGRFTH")[1:] + take("MGRMTH")[1:]
    for grandparent in take("GRFTH", "GRMTH", "GRPRN"):
        wanted = [grandparent.gender] if grandparent.gender in ("male", "female") else []
        slot = next(
            (
                (side, sex)
                for side in sides
                for sex in wanted or ["male", "female"]
                if not side[sex]
            ),
            None,
        )
        if slot is None:
            loose.append(grandparent)
        else:
            slot[0][slot[1]] = grandparent
    aunts = [
        _by_birth(take("PAUNT", "PUNCLE", "AUNT", "UNCLE")),
        _by_birth(take("MAUNT", "MUNCLE")),
    ]
    stepmother, stepfather = one("STPMTH"), one("STPFTH")
    loose += take("STPMTH")[1:] + take("STPFTH")[1:]
    full = take("SIB", "SIS", "BRO")
    halves: list[list[Member]] = [[], []]  # by the father's side, by the mother's
    for half in take("HSIB", "HSIS", "HBRO"):
        if father is not None and half.parent == father.ref:
            halves[0].append(half)
        elif mother is not None and half.parent == mother.ref:
            halves[1].append(half)
        else:
            halves[1 if stepfather is not None and stepmother is None else 0].append(half)
    anyone_above = any(side[s] for side in sides for s in ("male", "female")) or any(aunts)
    if father or mother or full or any(halves) or stepmother or stepfather or anyone_above:
        father = father or _placeholder("FTH", "male", "father")
        mother = mother or _placeholder("MTH", "female", "mother")
    unions: list[Union] = []
    rows: list[list[Member]] = [[], [], [], []]
    # Grandparents' unions: their child the client's parent, nearest the middle.
    for index, (side, parent, side_aunts) in enumerate(
        zip(sides, (father, mother), aunts, strict=True)
    ):
        if not (side["male"] or side["female"] or side_aunts):
            continue
        label = ("paternal", "maternal")[index]
        grandfather = side["male"] or _placeholder("GRFTH", "male", f"{label}-grandfather")
        grandmother = side["female"] or _placeholder("GRMTH", "female", f"{label}-grandmother")
        assert parent is not None
        children = [*side_aunts, parent] if index == 0 else [parent, *side_aunts]
        unions.append(
            Union(
                f"{label}-grandparents",
                grandfather,
                grandmother,
                _status(grandfather, grandmother),
                children,
            )
        )
        rows[0] += [grandfather, grandmother]
    # The parents' generation: paternal aunts and uncles, the father's other partner, the
    # father, the mother, the mother's other partner, maternal aunts and uncles.
    siblings = _by_birth([*full, client])
    if father is not None and mother is not None:
        unions.append(Union("parents", father, mother, _status(father, mother), siblings))
        if stepmother or halves[0]:
            other = stepmother or _placeholder("PRN", "unknown", "father-partner")
            status = _status(other) if stepmother else "married"
            unions.append(Union("father-partner", other, father, status, _by_birth(halves[0])))
        if stepfather or halves[1]:
            other = stepfather or _placeholder("PRN", "unknown", "mother-partner")
            status = _status(other) if stepfather else "married"
            unions.append(Union("mother-partner", mother, other, status, _by_birth(halves[1])))
        rows[1] = [*aunts[0]]
        for union in unions:
            if union.key == "father-partner":
                rows[1].append(union.left)
        rows[1] += [father, mother]
        for union in unions:
            if union.key == "mother-partner":
                rows[1].append(union.right)
        rows[1] += aunts[1]
    # The client's generation: half-siblings on the father's side, the client's siblings
    # with the client's partners beside the client (former ones left, current ones right),
    # half-siblings on the mother's side, then cousins.
    former = take("FMRSPS")
    current = take(*_PARTNERS)
    former, current = former + current[1:], current[:1]
    client_unions = [
        Union(f"client-former-{i}", partner, client, _status(partner, default="divorced"), [])
        for i, partner in enumerate(former)
    ]
    client_unions += [
        Union(
            "client-partner",
            client,
            partner,
            _status(partner, default="cohabiting" if partner.code in _COHABITING else "married"),
            [],
        )
        for partner in current
    ]
    children = take("CHILD", "DAU", "SON")
    for child in children:
        home: Union | None = next(
            (u for u in client_unions if child.parent in (u.left.ref, u.right.ref)), None
        )
        if home is None:
            home = next((u for u in client_unions if u.key == "client-partner"), None)
        if home is None and client_unions:
            home = client_unions[-1]
        if home is None:
            home = Union(
                "client-partner",
                client,
                _placeholder("PRN", "unknown", "client-partner"),
                "married",
                [],
            )
            client_unions.append(home)
        home.children.append(child)
    for union in client_unions:
        union.children = _by_birth(union.children)
    unions += client_unions
    row = [*_by_birth(halves[0])]
    for member in siblings:
        if member is client:
            row += [u.left for u in client_unions if u.right is client]
            row.append(client)
            row += [u.right for u in client_unions if u.left is client]
        else:
            row.append(member)
    rows[2] = [*row, *_by_birth(halves[1]), *take("COUSN"), *loose]
    rows[3] = [child for union in client_unions for child in union.children]
    kept = [r for r in rows if r]
    for index, members in enumerate(kept):
        for member in members:
            member.row = index
    return Family(kept, unions)


# -- layout ------------------------------------------------------------------------------------
def _isotonic(targets: list[float], weights: list[float]) -> list[float]:
    """The non-decreasing sequence nearest the targets (weighted least squares), by
    pool-adjacent-violators."""
    blocks: list[list[float]] = []  # [mean, weight, count]
    for target, weight in zip(targets, weights, strict=True):
        blocks.append([target, weight, 1])
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            mean2, weight2, count2 = blocks.pop()
            mean1, weight1, count1 = blocks.pop()
            total = weight1 + weight2
            blocks.append([(mean1 * weight1 + mean2 * weight2) / total, total, count1 + count2])
    out: list[float] = []
    for mean, _weight, count in blocks:
        out += [mean] * int(count)
    return out


def _place_row(row: list[Member], wanted: dict[Member, float], gaps: list[float]) -> None:
    """Move the row's members as near as they can get to where they are wanted, keeping
    their order and the gaps between them."""
    offsets = [0.0]
    for gap in gaps:
        offsets.append(offsets[-1] + gap)
    targets = [wanted.get(m, m.x) - o for m, o in zip(row, offsets, strict=True)]
    weights = [1.0 if m in wanted else 0.05 for m in row]
    for member, value, offset in zip(row, _isotonic(targets, weights), offsets, strict=True):
        member.x = value + offset


def layout(fam: Family) -> None:
    """x for every member: children centred under their parents' partnership line,
    parents over their children, rows kept in order and apart."""
    sibship = {child: union for union in fam.unions for child in union.children}
    gaps: list[list[float]] = []
    for row in fam.rows:
        row_gaps: list[float] = []
        for a, b in itertools.pairwise(row):
            apart = sibship.get(a) is not sibship.get(b) and (a in sibship or b in sibship)
            row_gaps.append(GAP + (_APART if apart else 0))
        gaps.append(row_gaps)
        x = 0.0
        for member, gap in zip(row, [0.0, *row_gaps], strict=True):
            x += gap
            member.x = x
    for _ in range(30):
        for index, row in enumerate(fam.rows):  # children under their parents
            wanted: dict[Member, float] = {}
            for union in fam.unions:
                kids = [c for c in union.children if c.row == index]
                # Siblings side by side, centred under their parents.
                first = union.anchor - GAP * (len(kids) - 1) / 2
                wanted.update({c: first + GAP * n for n, c in enumerate(kids)})
            if wanted:
                _place_row(row, wanted, gaps[index])
        for index in range(len(fam.rows) - 1, -1, -1):  # parents over their children
            pulls: dict[Member, list[float]] = {}
            for union in fam.unions:
                if union.left.row != index or not union.children:
                    continue
                # Partners close together (a gap apart), centred over their children.
                centre = sum(c.x for c in union.children) / len(union.children)
                pulls.setdefault(union.left, []).append(centre - GAP / 2)
                pulls.setdefault(union.right, []).append(centre + GAP / 2)
            if pulls:
                wanted = {m: sum(v) / len(v) for m, v in pulls.items()}
                _place_row(fam.rows[index], wanted, gaps[index])
    least = min(m.x for row in fam.rows for m in row)
    for row in fam.rows:
        for member in row:
            member.x += _MARGIN - least


# -- drawing -----------------------------------------------------------------------------------
def _y(row: int) -> float:
    return _TOP + row * _PITCH


def _shape(
    parent: ET.Element, member: Member, x: float, y: float, grow: float, **style: str
) -> None:
    h = SIZE / 2 + grow
    if member.gender == "male":
        attrs = {
            "x": f"{x - h:.1f}",
            "y": f"{y - h:.1f}",
            "width": f"{2 * h:.1f}",
            "height": f"{2 * h:.1f}",
        }
        ET.SubElement(parent, "rect", {"class": "male", **attrs, **style})
    elif member.gender == "female":
        ET.SubElement(
            parent,
            "circle",
            {"class": "female", "cx": f"{x:.1f}", "cy": f"{y:.1f}", "r": f"{h:.1f}", **style},
        )
    else:
        points = f"{x:.1f},{y - h:.1f} {x + h:.1f},{y:.1f} {x:.1f},{y + h:.1f} {x - h:.1f},{y:.1f}"
        ET.SubElement(parent, "polygon", {"class": "other", "points": points, **style})


def _years(member: Member) -> str:
    if member.born and member.died:
        return f"{member.born.year}\u2013{member.died.year}" + (
            f" ({member.age})" if member.age is not None else ""
        )
    if member.died:
        return f"d. {member.died.year}"
    if member.deceased:
        return f"deceased, aged {member.age}" if member.age is not None else "deceased"
    if member.born:
        return f"b. {member.born.year}"
    return ""


def _draw_member(root: ET.Element, member: Member) -> None:
    x, y = member.x, _y(member.row)
    if member.placeholder:
        group = ET.SubElement(root, "g", {"class": "placeholder", "data-relation": member.code})
        ET.SubElement(group, "title").text = f"{WORDS.get(member.code, 'parent')}: not recorded"
        _shape(
            group,
            member,
            x,
            y,
            0,
            fill="white",
            stroke="#888888",
            **{"stroke-width": "1.5", "stroke-dasharray": "4 3"},
        )
        text(group, x, y + 5, "?", fill="#888888", **{"font-size": "14"})
        text(group, x, y + SIZE / 2 + 16, "not recorded", fill="#666666", **{"font-size": "10"})
        return
    group = ET.SubElement(
        root,
        "g",
        {
            "class": "person client" if member.client else "person",
            "data-ref": member.ref,
            "data-relation": member.code,
            "data-gender": member.gender,
            "data-deceased": "true" if member.deceased else "false",
            **({"data-age": str(member.age)} if member.age is not None else {}),
        },
    )
    role = WORDS.get(member.code, member.code)
    details = ", ".join(v for v in (role, _years(member)) if v)
    ET.SubElement(group, "title").text = f"{member.name} ({details})"
    style = {"fill": "white", "stroke": "black", "stroke-width": "2"}
    _shape(group, member, x, y, 0, **style)
    if member.client:  # the index person: a double outline
        _shape(group, member, x, y, 5, **{**style, "fill": "none"})
    if member.deceased:
        half = SIZE / 2 - (6 if member.gender == "female" else 0)
        for dx in (-1, 1):
            line(group, x - dx * half, y - half, x + dx * half, y + half, **{"class": "deceased"})
    elif member.age is not None:
        text(
            group,
            x,
            y + 5,
            str(member.age),
            **{"class": "age", "font-size": "14", "font-weight": "bold"},
        )
    below = y + SIZE / 2 + 20
    lines = textwrap.wrap(member.name, 17)[:2] or [member.name]
    for number, value in enumerate(lines):
        text(
            group,
            x,
            below + 14 * number,
            value,
            **{"class": "name", "font-weight": "bold" if member.client else "normal"},
        )
    below += 14 * len(lines)
    short = _SHORT.get(member.code, role)
    text(group, x, below, short, fill="#444444", **{"class": "role", "font-size": "10.5"})
    if _years(member):
        text(
            group,
            x,
            below + 13,
            _years(member),
            fill="#444444",
            **{"class": "years", "font-size": "10.5"},
        )


def _draw_union(root: ET.Element, union: Union) -> None:
    y = _y(union.left.row)
    left = union.left.x + SIZE / 2 + (5 if union.left.client else 0)
    right = union.right.x - SIZE / 2 - (5 if union.right.client else 0)
    group = ET.SubElement(
        root, "g", {"class": "union", "data-unit": union.key, "data-status": union.status}
    )
    dashed = {"stroke-dasharray": "7 5"} if union.status == "cohabiting" else {}
    line(
        group,
        left,
        y,
        right,
        y,
        **{
            "class": "link",
            "data-kind": "partners",
            "data-from": union.left.ref,
            "data-to": union.right.ref,
            "data-status": union.status,
            "data-unit": union.key,
            **dashed,
        },
    )
    marks = {"separated": 1, "divorced": 2}.get(union.status, 0)
    centre = union.anchor - (16 if union.children else 0)
    for number in range(marks):
        x = centre - 4 * (marks - 1) + 8 * number
        line(group, x - 5, y + 9, x + 5, y - 9, **{"class": union.status})
    if not union.children:
        return
    bar = _y(union.children[0].row) - SIZE / 2 - 30
    parents = " ".join(p.ref for p in (union.left, union.right) if not p.placeholder)
    sibs = ET.SubElement(
        group, "g", {"class": "sibship", "data-unit": union.key, "data-parents": parents}
    )
    unit = {"data-unit": union.key}
    line(
        sibs,
        union.anchor,
        y,
        union.anchor,
        bar,
        **{
            "class": "link",
            "data-kind": "descent",
            "data-from": union.key,
            "data-to": union.key,
            **unit,
        },
    )
    xs = [c.x for c in union.children] + [union.anchor]
    line(sibs, min(xs), bar, max(xs), bar, **{"class": "sibship-line", **unit})
    for child in union.children:
        top = _y(child.row) - SIZE / 2 - (5 if child.client else 0)
        line(
            sibs,
            child.x,
            bar,
            child.x,
            top,
            **{
                "class": "link",
                "data-kind": "child",
                "data-from": union.key,
                "data-to": child.ref,
                **unit,
            },
        )


def _legend(root: ET.Element, x: float, y: float) -> float:
    """The key to the symbols and lines, in one line from (x, y); its right end."""
    group = ET.SubElement(root, "g", {"class": "legend", "font-size": "11", "fill": "#333333"})
    items = [
        ("rect", "male"),
        ("circle", "female"),
        ("double", "client"),
        ("cross", "deceased"),
        ("married", "married"),
        ("cohabiting", "living together"),
        ("separated", "separated"),
        ("divorced", "divorced"),
    ]
    for kind, label in items:
        style = {"fill": "white", "stroke": "black", "stroke-width": "1.5"}
        if kind == "rect":
            ET.SubElement(
                group,
                "rect",
                {"x": f"{x:.1f}", "y": f"{y - 8:.1f}", "width": "16", "height": "16", **style},
            )
        elif kind in ("circle", "double"):
            ET.SubElement(
                group, "circle", {"cx": f"{x + 8:.1f}", "cy": f"{y:.1f}", "r": "8", **style}
            )
            if kind == "double":
                ET.SubElement(
                    group,
                    "circle",
                    {
                        "cx": f"{x + 8:.1f}",
                        "cy": f"{y:.1f}",
                        "r": "11",
                        **{**style, "fill": "none"},
                    },
                )
        elif kind == "cross":
            ET.SubElement(
                group,
                "rect",
                {"x": f"{x:.1f}", "y": f"{y - 8:.1f}", "width": "16", "height": "16", **style},
            )
            line(group, x, y - 8, x + 16, y + 8, **{"stroke-width": "1.5"})
            line(group, x + 16, y - 8, x, y + 8, **{"stroke-width": "1.5"})
        else:
            dash = {"stroke-dasharray": "5 4"} if kind == "cohabiting" else {}
            line(group, x - 4, y, x + 24, y, **{"stroke-width": "1.5", **dash})
            marks = {"separated": 1, "divorced": 2}.get(kind, 0)
            for number in range(marks):
                mx = x + 10 - 3 * (marks - 1) + 6 * number
                line(group, mx - 4, y + 7, mx + 4, y - 7, **{"stroke-width": "1.5"})
        label_x = x + (30 if kind in ("married", "cohabiting", "separated", "divorced") else 22)
        text(group, label_x, y + 4, label, **{"text-anchor": "start"})
        x += 30 + 7 * len(label) + 22
    return x


def genogram_svg(network: Network) -> str:
    """The client's genogram from RelatedPerson and FamilyMemberHistory (v3 RoleCode
    relationships to the client), ages as of network.today."""
    fam = family(network)
    layout(fam)
    members = [m for row in fam.rows for m in row]
    width = max(max(m.x for m in members) + _MARGIN, 760)
    height = _y(len(fam.rows) - 1) + SIZE / 2 + 95
    client = next(m for m in members if m.client)
    root = svg(width, height + 40, f"Genogram of {client.name}")
    text(
        root,
        20,
        30,
        f"Genogram of {client.name}",
        **{"text-anchor": "start", "font-size": "16", "font-weight": "bold"},
    )
    text(
        root,
        20,
        48,
        f"as of {network.today.isoformat()}; ages in years",
        fill="#555555",
        **{"text-anchor": "start", "font-size": "11"},
    )
    lines = ET.SubElement(root, "g", {"class": "links"})
    for union in fam.unions:
        _draw_union(lines, union)
    for member in members:
        _draw_member(root, member)
    right = _legend(root, 24, height + 16)
    if right > width:
        root.set("width", f"{right:.0f}")
        root.set("viewBox", f"0 0 {right:.0f} {height + 40:.0f}")
    return done(root)


__all__ = ["GENERATION", "WORDS", "Family", "Member", "Union", "family", "genogram_svg", "layout"]
