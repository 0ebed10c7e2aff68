"""_include and _revinclude (spec search.html#include).

``_include=CarePlan:subject[:Patient]`` adds what the matches refer to; ``_revinclude=
Task:focus[:CarePlan]`` adds what refers to the matches; ``*`` as the parameter means every
reference parameter of the source type. The :iterate modifier applies a directive once more
to the resources included by the first round (one extra level: cycles cannot run away).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from app.fhir.errors import InvalidRequest, TooCostly
from app.fhir.registry import is_resource_type
from app.search.registry import param

MAX_DIRECTIVES: Final = 20


@dataclass(frozen=True, slots=True)
class Include:
    """One directive: follow source_type.param (None = every reference parameter)."""

    source_type: str
    param: str | None
    target_type: str | None
    reverse: bool
    iterate: bool

    @property
    def params(self) -> tuple[str, ...] | None:
        """The parameter codes to follow (None: all of the source type's)."""
        return None if self.param is None else (self.param,)


def _parse(name: str, value: str) -> Include:
    base, _, modifier = name.partition(":")
    if modifier not in ("", "iterate", "recurse"):
        raise InvalidRequest(f"{name}: unknown modifier :{modifier}", expression=(name,))
    parts = value.split(":")
    if len(parts) not in (2, 3) or not all(parts):
        raise InvalidRequest(
            f"{base} takes SourceType:parameter[:TargetType], not {value[:80]!r}",
            expression=(name,),
        )
    source_type, code = parts[0], parts[1]
    target_type = parts[2] if len(parts) == 3 else None
    if not is_resource_type(source_type):
        raise InvalidRequest(f"{base}: {source_type!r} is not a resource type", expression=(name,))
    if code != "*":
        search_param = param(source_type, code)
        if search_param is None or search_param.type != "reference":
            raise InvalidRequest(
                f"{base}: {source_type}.{code} is not a reference parameter", expression=(name,)
            )
        if (
            target_type is not None
            and search_param.targets
            and (target_type not in search_param.targets)
        ):
            raise InvalidRequest(
                f"{base}: {source_type}.{code} cannot refer to a {target_type}",
                expression=(name,),
            )
    if target_type is not None and not is_resource_type(target_type):
        raise InvalidRequest(f"{base}: {target_type!r} is not a resource type", expression=(name,))
    return Include(
        source_type,
        None if code == "*" else code,
        target_type,
        reverse=base == "_revinclude",
        iterate=bool(modifier),
    )


def parse_includes(params: Sequence[tuple[str, str]]) -> tuple[Include, ...]:
    """Every _include / _revinclude directive of a query, validated."""
    directives = []
    for name, value in params:
        if name.partition(":")[0] in ("_include", "_revinclude"):
            directives.append(_parse(name, value))
    if len(directives) > MAX_DIRECTIVES:
        raise TooCostly(f"At most {MAX_DIRECTIVES} _include/_revinclude directives are accepted")
    return tuple(dict.fromkeys(directives))
