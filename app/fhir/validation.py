"""Validation of incoming resources: structure (fhir.resources R4B) and required bindings.

Spec: validation.html, and http.html#create / #update for what a server must refuse (400).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

from fhir.resources.R4B import get_fhir_model_class
from pydantic import ValidationError

from app.fhir.bindings import check_required_bindings
from app.fhir.errors import InvalidRequest, Issue, NotFound, StructureError
from app.fhir.json_types import check_json_types
from app.fhir.narrative import check_narratives
from app.fhir.registry import is_resource_type, is_valid_id

_ISSUE_CODES = {
    "extra_forbidden": "structure",
    "missing": "required",
}
_MAX_ISSUES = 50


def _expression(resource_type: str, loc: tuple[int | str, ...]) -> str:
    parts = [resource_type]
    for item in loc:
        if isinstance(item, int):
            parts[-1] += f"[{item}]"
        elif item.replace("_", "").isalnum():
            parts.append(item)
        # Other loc entries name pydantic validators, not FHIR elements.
    return ".".join(parts)


def _issues_from_pydantic(resource_type: str, exc: ValidationError) -> list[Issue]:
    issues: list[Issue] = []
    for err in exc.errors(include_url=False)[:_MAX_ISSUES]:
        code = _ISSUE_CODES.get(err["type"], "value")
        expression = _expression(resource_type, tuple(err["loc"]))
        if err["type"] == "extra_forbidden":
            message = f"Unknown element '{err['loc'][-1]}' at {expression}"
        else:
            message = f"{expression}: {err['msg']}"
        issues.append(Issue(code, message, "error", (expression,)))
    return issues


def check_resource(body: Any, *, resource_type: str, resource_id: str | None) -> dict[str, Any]:
    """Check a parsed body is a valid resource of resource_type; return it without server meta.

    resource_id is the id the URL names (update) or None (create, where any id is ignored:
    spec http.html#create). Raises InvalidRequest/StructureError with one issue per problem.
    """
    if not isinstance(body, dict):
        raise StructureError("The body must be a JSON object holding a FHIR resource")
    body_type = body.get("resourceType")
    if not isinstance(body_type, str):
        raise StructureError("The resource has no resourceType", expression=("resourceType",))
    if body_type != resource_type:
        raise InvalidRequest(
            f"The resource is a {body_type!r} but the URL names {resource_type!r}",
            expression=("resourceType",),
        )
    if resource_id is None:
        body.pop("id", None)
    else:
        if "id" not in body:
            raise InvalidRequest(
                "The resource must carry an id equal to the id in the URL (spec http.html#update)",
                expression=(f"{resource_type}.id",),
            )
        if body["id"] != resource_id:
            raise InvalidRequest(
                f"The resource id {body['id']!r} differs from the id {resource_id!r} in the URL",
                expression=(f"{resource_type}.id",),
            )
    meta = body.get("meta")
    if isinstance(meta, dict):
        # Server-owned (spec resource.html#Meta): never taken from the client.
        for key in ("versionId", "lastUpdated", "_versionId", "_lastUpdated"):
            meta.pop(key, None)
        if not meta:
            del body["meta"]
    # fhir.resources coerces ("yes" -> True, "2" -> 2) but the stored JSON is the client's,
    # so JSON representations are checked first (spec json.html).
    _refuse("structure", [(v.expression, v.message) for v in check_json_types(resource_type, body)])
    model = get_fhir_model_class(resource_type)
    try:
        model.model_validate(body)
    except ValidationError as exc:
        issues = _issues_from_pydantic(resource_type, exc)
        raise StructureError(issues[0].diagnostics, issues=issues) from exc
    except (ValueError, TypeError, KeyError, AttributeError) as exc:  # from fhir_core validators
        raise StructureError(f"{resource_type}: {exc}") from exc
    # Narratives are rendered by agency UIs: active content is refused (txt-1, txt-2).
    _refuse("invariant", [(v.expression, v.message) for v in check_narratives(resource_type, body)])
    # per-1: a Period never ends before it starts (a plan's phase, an action's timeframe).
    _refuse("invariant", list(_backward_periods(body, resource_type)))
    _refuse(
        "code-invalid",
        [
            (v.expression, f"{v.value!r} is not in the required value set {v.value_set}")
            for v in check_required_bindings(resource_type, body)
        ],
    )
    return body


_PERIOD_KEYS = frozenset({"id", "extension", "start", "end", "_start", "_end"})


def _backward_periods(value: Any, path: str) -> Iterator[tuple[str, str]]:
    """(expression, message) of each Period whose end is before its start (spec
    datatypes.html#Period, per-1). A Period is told by its shape: an object with start and
    end and nothing but id and extensions besides (fhir.resources does not check per-1)."""
    if isinstance(value, list):
        for index, item in enumerate(value):
            yield from _backward_periods(item, f"{path}[{index}]")
        return
    if not isinstance(value, dict):
        return
    start, end = value.get("start"), value.get("end")
    if isinstance(start, str) and isinstance(end, str) and value.keys() <= _PERIOD_KEYS:
        if _definitely_before(end, start):
            yield path, f"the period ends ({end}) before it starts ({start}) (per-1)"
        return
    for key, item in value.items():
        if isinstance(item, (dict, list)):
            yield from _backward_periods(item, f"{path}.{key}")


def _definitely_before(end: str, start: str) -> bool:
    """Whether end is before start whatever their precision: instants compared as
    instants, otherwise only when end's day is before start's day."""
    if "T" in end and "T" in start:
        try:
            return dt.datetime.fromisoformat(end) < dt.datetime.fromisoformat(start)
        except (TypeError, ValueError):  # not comparable (no zone): the day decides
            pass
    if len(end) >= 10 and len(start) >= 10:
        return end[:10] < start[:10]
    return False


def _refuse(code: str, problems: list[tuple[str, str]]) -> None:
    """Raise one StructureError listing every (expression, message), if there are any."""
    if not problems:
        return
    issues = [
        Issue(code, f"{where}: {message}", "error", (where,))
        for where, message in problems[:_MAX_ISSUES]
    ]
    raise StructureError(issues[0].diagnostics, issues=issues)


def check_type_and_id(resource_type: str, resource_id: str | None = None) -> None:
    """Refuse an unknown resource type (404) or a malformed id (400) named in a URL."""
    if not is_resource_type(resource_type):
        raise NotFound(f"Unknown resource type {resource_type!r}")
    if resource_id is not None and not is_valid_id(resource_id):
        raise InvalidRequest(
            f"{resource_id!r} is not a valid id: 1-64 characters of A-Z a-z 0-9 - .",
            expression=(f"{resource_type}.id",),
        )
