"""Generate ``schemas/fhir/required_bindings.json`` from the official FHIR R4B package.

fhir.resources validates structure and primitive formats but does not enforce
*required* terminology bindings, so a CarePlan with ``"status": "bogus"``
passes. This script precomputes, for every base resource type, the code
elements with a required binding and the full set of codes they may hold, so
that ``app.fhir.bindings`` can check bodies without any terminology server.

Input: the ``hl7.fhir.r4b.core@4.3.0`` npm package (CC0), unpacked::

    cd /tmp && npm pack hl7.fhir.r4b.core@4.3.0 && tar xzf hl7.fhir.r4b.core-4.3.0.tgz

Run (from the repository root)::

    python scripts/gen_required_bindings.py /tmp/package

where the argument is the directory holding ``package.json`` and the
``StructureDefinition-*.json`` / ``ValueSet-*.json`` / ``CodeSystem-*.json``
files. ``--output`` overrides the destination file.

Output shape (all keys and code lists sorted, so the file is deterministic)::

    {
      "source": "hl7.fhir.r4b.core@4.3.0",
      "bindings": {"CarePlan": {"status": {"valueSet": "...", "codes": [...]}}},
      "contentReferences": {"Questionnaire": {"item.item": "item"}},
      "resourceElements": {"Bundle": ["entry.resource", ...], "CarePlan": ["contained"]},
      "skipped": {"Composition": {"confidentiality": {"valueSet": "...", "reason": "..."}}}
    }

Paths are element paths without the leading resource type. An element listed
under ``contentReferences`` has no children of its own in the snapshot: its
content is that of the referenced element (e.g. ``Questionnaire.item.item``
repeats ``Questionnaire.item`` recursively). ``resourceElements`` lists the
elements of type ``Resource`` (``contained``, ``Bundle.entry.resource``,
``Parameters.parameter.resource``, ...) whose value is checked as a resource of
its own ``resourceType``. Elements whose value set cannot be fully enumerated
from the package (external code systems such as ``urn:ietf:bcp:13`` mime
types, value sets not shipped in the package, filters we cannot evaluate) are
listed under ``skipped`` with the reason and are not checked.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

DEFAULT_OUTPUT = Path(__file__).resolve().parents[1] / "schemas" / "fhir" / "required_bindings.json"

JsonObj = dict[str, Any]


class NotEnumerableError(Exception):
    """Raised when a value set cannot be fully expanded from the package alone."""


def _strip_version(url: str) -> str:
    """Drop a ``|version`` suffix from a canonical URL."""
    return url.split("|", 1)[0]


def _walk_concepts(concepts: list[JsonObj]) -> Iterator[JsonObj]:
    """Yield every concept of a CodeSystem, including nested ones."""
    for concept in concepts:
        yield concept
        yield from _walk_concepts(concept.get("concept", []))


def _find_concept(concepts: list[JsonObj], code: str) -> JsonObj | None:
    """Return the (possibly nested) concept with ``code``, if any."""
    for concept in _walk_concepts(concepts):
        if concept.get("code") == code:
            return concept
    return None


@dataclass
class Terminology:
    """Code systems and value sets of the package, with memoised expansion."""

    code_systems: dict[str, JsonObj] = field(default_factory=dict)
    value_sets: dict[str, JsonObj] = field(default_factory=dict)
    _expanded: dict[str, frozenset[str] | str] = field(default_factory=dict)

    def expand(self, url: str) -> frozenset[str]:
        """Return all codes of value set ``url`` or raise NotEnumerableError."""
        url = _strip_version(url)
        cached = self._expanded.get(url)
        if isinstance(cached, str):
            raise NotEnumerableError(cached)
        if cached is not None:
            return cached
        # Sentinel first so that a cyclic include fails instead of recursing forever.
        self._expanded[url] = f"cyclic value set include via {url}"
        try:
            codes = self._expand_uncached(url)
        except NotEnumerableError as exc:
            self._expanded[url] = str(exc)
            raise
        self._expanded[url] = codes
        return codes

    def _expand_uncached(self, url: str) -> frozenset[str]:
        value_set = self.value_sets.get(url)
        if value_set is None:
            raise NotEnumerableError(f"value set {url} is not in the package")
        compose = value_set.get("compose")
        if compose is None:
            raise NotEnumerableError(f"value set {url} has no compose")
        includes: list[JsonObj] = compose.get("include", [])
        if not includes:
            raise NotEnumerableError(f"value set {url} has no compose.include")
        codes: set[str] = set()
        for include in includes:
            codes |= self._expand_part(include)
        for exclude in compose.get("exclude", []):
            codes -= self._expand_part(exclude)
        return frozenset(codes)

    def _expand_part(self, part: JsonObj) -> frozenset[str]:
        """Expand one compose.include/exclude entry (system part ∩ value sets)."""
        result: frozenset[str] | None = None
        system = part.get("system")
        if system is not None:
            result = self._system_codes(system, part)
        elif part.get("concept") or part.get("filter"):
            raise NotEnumerableError("compose entry has concepts or filters but no system")
        # Several valueSet entries (and a system part) combine by intersection.
        for ref in part.get("valueSet", []):
            codes = self.expand(ref)
            result = codes if result is None else result & codes
        if result is None:
            raise NotEnumerableError("compose entry has neither system nor valueSet")
        return result

    def _system_codes(self, system: str, part: JsonObj) -> frozenset[str]:
        """Codes selected from one code system by an include/exclude entry."""
        explicit: list[JsonObj] = part.get("concept", [])
        filters: list[JsonObj] = part.get("filter", [])
        if explicit and not filters:
            # An explicit list is enumerable even for external systems.
            return frozenset(c["code"] for c in explicit)
        code_system = self.code_systems.get(system)
        if code_system is None:
            raise NotEnumerableError(f"code system {system} is not in the package")
        if code_system.get("content") != "complete":
            raise NotEnumerableError(
                f"code system {system} has content={code_system.get('content')!r}"
            )
        if code_system.get("caseSensitive") is False:
            # Exact string comparison in the checker would then be wrong.
            raise NotEnumerableError(f"code system {system} is case-insensitive")
        concepts: list[JsonObj] = code_system.get("concept", [])
        codes = frozenset(c["code"] for c in _walk_concepts(concepts))
        for flt in filters:
            codes &= self._apply_filter(system, code_system, flt)
        if explicit:
            codes &= frozenset(c["code"] for c in explicit)
        return codes

    def _apply_filter(self, system: str, code_system: JsonObj, flt: JsonObj) -> frozenset[str]:
        """Evaluate the trivial hierarchy filters; anything else is not enumerable."""
        prop, op, value = flt.get("property"), flt.get("op"), flt.get("value", "")
        concepts: list[JsonObj] = code_system.get("concept", [])
        everything = frozenset(c["code"] for c in _walk_concepts(concepts))
        if prop == "concept" and op == "in":
            return everything & frozenset(v.strip() for v in value.split(","))
        if prop != "concept" or op not in ("is-a", "descendent-of", "is-not-a"):
            raise NotEnumerableError(f"filter {prop} {op} {value} on {system}")
        # Nesting is only the subsumption hierarchy when the system says so and
        # no concept declares extra parents via properties.
        if code_system.get("hierarchyMeaning", "is-a") != "is-a" or any(
            p.get("code") in ("parent", "child", "subsumedBy")
            for c in _walk_concepts(concepts)
            for p in c.get("property", [])
        ):
            raise NotEnumerableError(f"filter {op} on non-nested hierarchy of {system}")
        root = _find_concept(concepts, value)
        if root is None:
            raise NotEnumerableError(f"filter {op} {value}: code not found in {system}")
        below = frozenset(c["code"] for c in _walk_concepts(root.get("concept", [])))
        if op == "descendent-of":
            return below
        subtree = below | {value}
        return subtree if op == "is-a" else everything - subtree


def load_package(package_dir: Path) -> tuple[str, list[JsonObj], Terminology]:
    """Read package.json, the resource StructureDefinitions and the terminology."""
    meta = json.loads((package_dir / "package.json").read_text(encoding="utf-8"))
    source = f"{meta['name']}@{meta['version']}"
    terminology = Terminology()
    for path in sorted(package_dir.glob("CodeSystem-*.json")):
        code_system = json.loads(path.read_text(encoding="utf-8"))
        terminology.code_systems[code_system["url"]] = code_system
    for path in sorted(package_dir.glob("ValueSet-*.json")):
        value_set = json.loads(path.read_text(encoding="utf-8"))
        terminology.value_sets[value_set["url"]] = value_set
    structures: list[JsonObj] = []
    for path in sorted(package_dir.glob("StructureDefinition-*.json")):
        sd = json.loads(path.read_text(encoding="utf-8"))
        if sd.get("kind") == "resource" and sd.get("derivation") == "specialization":
            structures.append(sd)
    return source, structures, terminology


def _relative(path: str) -> str:
    """Strip the leading resource type from an element path."""
    return path.split(".", 1)[1] if "." in path else ""


def build(package_dir: Path) -> JsonObj:
    """Build the output document from an unpacked package directory."""
    source, structures, terminology = load_package(package_dir)
    bindings: dict[str, dict[str, JsonObj]] = {}
    content_refs: dict[str, dict[str, str]] = {}
    resource_elements: dict[str, list[str]] = {}
    skipped: dict[str, dict[str, JsonObj]] = {}

    for sd in sorted(structures, key=lambda s: str(s["type"])):
        rtype: str = sd["type"]
        elements: list[JsonObj] = sd["snapshot"]["element"]
        paths = {e["path"] for e in elements}
        for element in elements:
            path: str = element["path"]
            rel = _relative(path)
            ref = element.get("contentReference")
            if ref is not None:
                # R4B uses local references ("#Questionnaire.item"); anything
                # else, or a dangling target, cannot be followed safely.
                target = ref[1:] if ref.startswith("#") else None
                if target is not None and target in paths and target.startswith(rtype + "."):
                    content_refs.setdefault(rtype, {})[rel] = _relative(target)
                else:
                    skipped.setdefault(rtype, {})[rel] = {
                        "contentReference": ref,
                        "reason": "unresolvable contentReference; subtree not checked",
                    }
                continue
            type_codes = [t.get("code") for t in element.get("type", [])]
            if type_codes == ["Resource"]:
                resource_elements.setdefault(rtype, []).append(rel)
                continue
            binding = element.get("binding")
            if type_codes != ["code"] or not binding or binding.get("strength") != "required":
                continue
            vs_url = binding.get("valueSet")
            if not vs_url:
                skipped.setdefault(rtype, {})[rel] = {"reason": "required binding without valueSet"}
                continue
            vs_url = _strip_version(vs_url)
            try:
                codes = terminology.expand(vs_url)
            except NotEnumerableError as exc:
                skipped.setdefault(rtype, {})[rel] = {"valueSet": vs_url, "reason": str(exc)}
                continue
            if not codes:
                skipped.setdefault(rtype, {})[rel] = {
                    "valueSet": vs_url,
                    "reason": "empty expansion",
                }
                continue
            bindings.setdefault(rtype, {})[rel] = {"valueSet": vs_url, "codes": sorted(codes)}

    return {
        "source": source,
        "bindings": bindings,
        "contentReferences": content_refs,
        "resourceElements": {k: sorted(v) for k, v in resource_elements.items()},
        "skipped": skipped,
    }


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "package_dir", type=Path, help="unpacked hl7.fhir.r4b.core package/ directory"
    )
    parser.add_argument("-o", "--output", type=Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args(argv)
    package_dir: Path = args.package_dir
    output: Path = args.output
    if not (package_dir / "package.json").is_file():
        parser.error(f"{package_dir} does not contain package.json")
    document = build(package_dir)
    output.parent.mkdir(parents=True, exist_ok=True)
    options = orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2
    output.write_bytes(orjson.dumps(document, option=options) + b"\n")
    n_types = len(document["bindings"])
    n_elements = sum(len(v) for v in document["bindings"].values())
    n_skipped = sum(len(v) for v in document["skipped"].values())
    print(
        f"{output}: {n_elements} elements in {n_types} resource types, {n_skipped} skipped",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
