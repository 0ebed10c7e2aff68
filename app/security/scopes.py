"""SMART scopes: what an access token lets its client do (pure functions).

SMART App Launch 2.x, "Scopes and Launch Context"
(https://hl7.org/fhir/smart-app-launch/scopes-and-launch-context.html). Backend Services
clients hold ``system/`` scopes only. Syntax v2: ``system/{Type|*}.{permissions}`` where the
permissions are a subset of ``cruds`` written in that order:

    c create    type-level create (and conditional create, with s)
    r read      read, vread, instance history
    u update    update, patch (update-as-create counts as update)
    d delete    delete (conditional delete also needs s)
    s search    type and system search, type and system history

SMART v1 spellings are accepted and mapped: ``.read`` -> ``rs``, ``.write`` -> ``cud``,
``.*`` -> ``cruds``. Granular v2 scopes (``system/Observation.rs?category=...``) are not
supported: they are never granted, so a token never carries more than was asked for.

Besides resource scopes the server knows one scope of its own, ``introspect``: a client
granted it may introspect any token (RFC 7662), not only its own.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Final, Literal

from app.fhir.errors import Forbidden, InvalidScope
from app.fhir.registry import is_resource_type
from app.security.caller import Caller

Interaction = Literal["c", "r", "u", "d", "s"]
PERMISSIONS: Final = "cruds"
INTROSPECT: Final = "introspect"
# Scopes of this server that are not about resources.
SPECIAL: Final = frozenset({INTROSPECT})
_V1: Final = {"read": "rs", "write": "cud", "*": "cruds"}
_NAMES: Final = {"c": "create", "r": "read", "u": "update", "d": "delete", "s": "search"}
_SHAPE = re.compile(r"^(patient|user|system)/([A-Za-z]+|\*)\.([A-Za-z*]+)$")
_CONTEXTS: Final = ("patient/", "user/", "system/")


@dataclass(frozen=True, slots=True)
class Scope:
    """One resource scope: context, resource type (or "*") and permissions (in cruds order)."""

    context: str
    resource_type: str
    permissions: str

    def __str__(self) -> str:
        return f"{self.context}/{self.resource_type}.{self.permissions}"


def _ordered(letters: Iterable[str]) -> str:
    chosen = set(letters)
    return "".join(p for p in PERMISSIONS if p in chosen)


def parse(text: str) -> Scope:
    """A resource scope in SMART v2 or v1 syntax; InvalidScope (invalid_scope) otherwise."""
    if "?" in text:
        raise InvalidScope(f"Scope {text[:100]!r}: granular scopes (with ?) are not supported")
    match = _SHAPE.match(text)
    if match is None:
        raise InvalidScope(
            f"Scope {text[:100]!r} is not a SMART scope like system/CarePlan.cruds, "
            "system/*.rs or system/Task.read"
        )
    context, resource_type, permissions = match.groups()
    if resource_type != "*" and not is_resource_type(resource_type):
        raise InvalidScope(f"Scope {text[:100]!r} names no FHIR R4B resource type")
    if permissions in _V1:
        return Scope(context, resource_type, _V1[permissions])
    if (
        not permissions
        or any(p not in PERMISSIONS for p in permissions)
        or _ordered(permissions) != permissions
    ):
        raise InvalidScope(
            f"Scope {text[:100]!r}: permissions must be letters of cruds in that order "
            "(e.g. rs, cud), or read, write, *"
        )
    return Scope(context, resource_type, permissions)


def normalise(scopes: Iterable[str]) -> list[str]:
    """Scopes a client may be registered with: system/ resource scopes (in v2 form) and the
    server's own scopes, without repeats. InvalidScope names the first one that is not."""
    out: dict[str, None] = {}
    for text in scopes:
        if text in SPECIAL:
            out[text] = None
            continue
        scope = parse(text)
        if scope.context != "system":
            raise InvalidScope(
                f"Scope {text[:100]!r}: a backend service client holds system/ scopes only"
            )
        out[str(scope)] = None
    if not out:
        raise InvalidScope("At least one scope is needed")
    return list(out)


def grant(requested: str, registered: Iterable[str]) -> list[str]:
    """The scopes to grant: each requested scope narrowed to what the client is registered
    for (SMART Backend Services: the server may grant less than asked, RFC 6749 section 3.3).

    Malformed resource scopes are refused (InvalidScope); well-formed ones the client may
    not have (other contexts, other types, granular scopes, unknown words) are left out.
    The result is empty when nothing at all can be granted.
    """
    held = [parse(s) for s in registered if s not in SPECIAL]
    special = {s for s in registered if s in SPECIAL}
    granted: dict[str, set[str]] = {}
    words: dict[str, None] = {}
    for text in requested.split():
        if text in special:
            words[text] = None
            continue
        if not text.startswith(_CONTEXTS) or "?" in text:
            continue
        wanted = parse(text)
        if wanted.context != "system":
            continue
        for scope in held:
            letters = set(wanted.permissions) & set(scope.permissions)
            if not letters:
                continue
            if wanted.resource_type == "*":
                target = scope.resource_type
            elif scope.resource_type in ("*", wanted.resource_type):
                target = wanted.resource_type
            else:
                continue
            granted.setdefault(target, set()).update(letters)
    out = [f"system/{t}.{_ordered(letters)}" for t, letters in sorted(granted.items())]
    return out + list(words)


@lru_cache(maxsize=1024)
def _grants(scopes: frozenset[str]) -> dict[str, frozenset[str]]:
    """Resource type (or "*") -> permission letters, from a token's system/ scopes."""
    out: dict[str, set[str]] = {}
    for text in scopes:
        if text in SPECIAL or not text.startswith("system/"):
            continue
        try:
            scope = parse(text)
        except InvalidScope:
            continue
        out.setdefault(scope.resource_type, set()).update(scope.permissions)
    return {t: frozenset(letters) for t, letters in out.items()}


def allows(caller: Caller, resource_type: str, interaction: Interaction) -> bool:
    """True if the caller's scopes permit the interaction on the type (or scopes are not
    enforced: auth off). resource_type "*" asks for a wildcard grant (every type)."""
    if caller.scopes is None:
        return True
    grants = _grants(caller.scopes)
    if interaction in grants.get("*", ()):
        return True
    return resource_type != "*" and interaction in grants.get(resource_type, ())


def has(caller: Caller, scope: str) -> bool:
    """True if the caller holds one of the server's own scopes (e.g. introspect)."""
    return caller.scopes is not None and scope in caller.scopes


def require(caller: Caller, resource_type: str, interactions: str) -> None:
    """Forbidden (403) naming the missing scope unless every interaction (letters of cruds)
    on resource_type is permitted. Unknown types pass: the service answers 404 for them."""
    if caller.scopes is None or (resource_type != "*" and not is_resource_type(resource_type)):
        return
    for letter in interactions:
        if not allows(caller, resource_type, letter):  # type: ignore[arg-type]
            _deny(resource_type, letter)


def require_types(caller: Caller, resource_types: Iterable[str] | None, interactions: str) -> None:
    """require() on each type; None means every type, which needs a system/*.x scope."""
    if caller.scopes is None:
        return
    if resource_types is None:
        require(caller, "*", interactions)
        return
    for resource_type in resource_types:
        require(caller, resource_type, interactions)


def searched_through(caller: Caller | None) -> Callable[[str], None] | None:
    """What checks each type a chain or _has passes through: a filter on a type searches
    it, so it needs s on that type too (None when scopes are not enforced)."""
    if caller is None or caller.scopes is None:
        return None

    def check(resource_type: str) -> None:
        require(caller, resource_type, "s")

    return check


def named_types(params: Iterable[tuple[str, str]]) -> list[str] | None:
    """The types a request names in _type (comma-separated, may repeat), or None for none:
    what a system search, $everything or $export will serve, for require_types()."""
    named = [t.strip() for k, v in params if k == "_type" for t in v.split(",") if t.strip()]
    return named or None


def _deny(resource_type: str, letter: str) -> None:
    needed = f"system/{resource_type}.{letter}"
    what = "every resource type" if resource_type == "*" else resource_type
    raise Forbidden(
        f"The access token's scopes do not permit {_NAMES[letter]} of {what}: "
        f"the scope {needed} is needed",
        headers={
            "WWW-Authenticate": (
                f'Bearer realm="casebridge", error="insufficient_scope", scope="{needed}"'
            )
        },
    )


__all__ = [
    "INTROSPECT",
    "PERMISSIONS",
    "Interaction",
    "Scope",
    "allows",
    "grant",
    "has",
    "named_types",
    "normalise",
    "parse",
    "require",
    "require_types",
    "searched_through",
]
