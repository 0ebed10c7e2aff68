"""Helpers for the search tests over HTTP: create data, run queries following next links,
and check a table of queries against the exact sets of resources they must match."""

from __future__ import annotations

from typing import Any

import httpx

# (label, query, names of the resources that must match: exactly these, no others)
Case = tuple[str, str, set[str]]
# Repeated query parameters as httpx takes them, (name, value) pairs in order. httpx types
# the list with its own value union and a list is invariant: a list[tuple[str, str]] is
# refused where a list annotated with this alias is not.
QueryPairs = list[tuple[str, str | int | float | bool | None]]


def create(client: httpx.Client, resource: dict[str, Any]) -> str:
    response = client.post(f"/{resource['resourceType']}", json=resource)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def put(client: httpx.Client, resource: dict[str, Any]) -> str:
    """Create (or replace) with a client-chosen id."""
    response = client.put(f"/{resource['resourceType']}/{resource['id']}", json=resource)
    assert response.status_code in (200, 201), response.text
    return str(resource["id"])


def update(client: httpx.Client, resource_type: str, rid: str, **changes: Any) -> None:
    """Read, change top-level elements (None removes one), write back: a new version."""
    body = client.get(f"/{resource_type}/{rid}").json()
    body.update(changes)
    for key in [k for k, v in changes.items() if v is None]:
        del body[key]
    response = client.put(f"/{resource_type}/{rid}", json=body)
    assert response.status_code == 200, response.text


def delete(client: httpx.Client, resource_type: str, rid: str) -> None:
    assert client.delete(f"/{resource_type}/{rid}").status_code in (200, 204)


def split_query(query: str) -> tuple[str, QueryPairs]:
    """``Type?a=b&c=d`` (values unencoded) -> ("/Type", [("a", "b"), ("c", "d")])."""
    path, _, qs = query.partition("?")
    params = [tuple(p.split("=", 1)) for p in qs.split("&") if p] if qs else []
    return "/" + path, params  # type: ignore[return-value]


def run(client: httpx.Client, query: str) -> list[str] | str:
    """Ids of the matches in order, following next links; or what went wrong, as text."""
    path, params = split_query(query)
    response = client.get(path, params=params)
    found: list[str] = []
    while True:
        if response.status_code != 200:
            return f"HTTP {response.status_code}: {response.text[:300]}"
        bundle = response.json()
        found += [
            e["resource"]["id"] for e in bundle.get("entry", []) if e["search"]["mode"] == "match"
        ]
        url = next(
            (lk["url"] for lk in bundle.get("link", []) if lk["relation"] == "next"),
            None,
        )
        if not url:
            break
        response = client.get(url)
    if len(found) != len(set(found)):
        return f"duplicates across pages: {found}"
    return found


def search(client: httpx.Client, query: str) -> list[str]:
    __tracebackhide__ = True
    found = run(client, query)
    assert isinstance(found, list), f"{query}: {found}"
    return found


def ids(client: httpx.Client, query: str) -> set[str]:
    return set(search(client, query))


def check(
    client: httpx.Client,
    made: dict[str, str],
    cases: list[Case],
    prefix: str,
    **values: str,
) -> None:
    """Run every case; fail once, listing each query whose matches are not exactly right.

    ``{name}`` in a query is replaced by ``values[name]`` or ``made[name]``.
    """
    __tracebackhide__ = True
    names = {rid: name for name, rid in made.items()}
    wrong = []
    for label, query, expected in cases:
        for key, value in {**made, **values}.items():
            query = query.replace("{" + key + "}", value)
        found = run(client, prefix + query)
        want = {made[k] for k in expected}
        if isinstance(found, str) or set(found) != want:
            shown = found if isinstance(found, str) else sorted(names.get(i, i) for i in found)
            wrong.append(
                f"[{label}] {prefix}{query}\n    expected {sorted(expected)}\n    got      {shown}"
            )
    assert not wrong, f"{len(wrong)} of {len(cases)} queries wrong:\n" + "\n".join(wrong)


def check_refused(client: httpx.Client, queries: list[str]) -> None:
    """Each query must get 400 with an OperationOutcome (never a 500, never a 200)."""
    __tracebackhide__ = True
    wrong = []
    for query in queries:
        path, params = split_query(query)
        response = client.get(path, params=params)
        is_outcome = (
            response.headers.get("content-type", "").startswith("application/fhir+json")
            and response.json().get("resourceType") == "OperationOutcome"
        )
        if response.status_code != 400 or not is_outcome:
            wrong.append(f"{query}\n    got HTTP {response.status_code}: {response.text[:200]}")
    assert not wrong, f"{len(wrong)} of {len(queries)} not refused:\n" + "\n".join(wrong)
