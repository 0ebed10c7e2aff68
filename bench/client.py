"""Direct HTTP calls the benchmark makes outside the timed phases: a sanity check and seeding."""

from __future__ import annotations

import asyncio

import httpx

from bench.payload import FHIR_JSON, care_plan_bytes

_HEADERS = {"Content-Type": FHIR_JSON, "Accept": FHIR_JSON}


def sanity_check(root_url: str) -> None:
    """One create, read and update with the benchmark's bodies; raise unless 201, 200, 200."""
    with httpx.Client(base_url=root_url, timeout=30.0, headers=_HEADERS) as client:
        created = client.post("/fhir/CarePlan", content=care_plan_bytes("sanity-1"))
        if created.status_code != 201:
            raise RuntimeError(f"create answered {created.status_code}: {created.text[:500]}")
        resource_id = created.json()["id"]
        read = client.get(f"/fhir/CarePlan/{resource_id}")
        if read.status_code != 200:
            raise RuntimeError(f"read answered {read.status_code}: {read.text[:500]}")
        body = care_plan_bytes("sanity-2", resource_id)
        updated = client.put(f"/fhir/CarePlan/{resource_id}", content=body)
        if updated.status_code != 200:
            raise RuntimeError(f"update answered {updated.status_code}: {updated.text[:500]}")


async def _seed(root_url: str, count: int, concurrency: int) -> list[str]:
    ids: list[str] = []
    queue = iter(range(count))
    limits = httpx.Limits(max_connections=concurrency)

    async def worker(client: httpx.AsyncClient) -> None:
        for n in queue:
            response = await client.post("/fhir/CarePlan", content=care_plan_bytes(f"seed-{n}"))
            if response.status_code != 201:
                raise RuntimeError(f"seeding: create answered {response.status_code}")
            ids.append(response.json()["id"])

    async with httpx.AsyncClient(
        base_url=root_url, timeout=30.0, headers=_HEADERS, limits=limits
    ) as client:
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
    return ids


def seed(root_url: str, count: int, concurrency: int) -> list[str]:
    """Create `count` CarePlans (not timed) and return their server-assigned ids."""
    return asyncio.run(_seed(root_url, count, concurrency))


def count(root_url: str, resource_type: str) -> int:
    """How many resources of a type the server holds (an accurate total)."""
    with httpx.Client(base_url=root_url, timeout=120.0, headers=_HEADERS) as client:
        response = client.get(
            f"/fhir/{resource_type}", params={"_summary": "count", "_total": "accurate"}
        )
        response.raise_for_status()
        return int(response.json()["total"])
