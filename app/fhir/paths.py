"""FHIRPath-style locations of elements in a JSON body, for OperationOutcome.expression."""

from __future__ import annotations


def expression(root: str, reversed_path: list[str | int]) -> str:
    """ "Patient.name[0].given" from root "Patient" and the path collected innermost first."""
    parts = [root]
    for segment in reversed(reversed_path):
        parts.append(f"[{segment}]" if type(segment) is int else f".{segment}")
    return "".join(parts)
