"""The Python load generator: asyncio + httpx, one process, N concurrent connections.

Closed loop by default (each connection sends its next request when the answer arrives, as
wrk does). With --rate R it is an open loop instead: request i is due at start + i/R whether
or not earlier answers have come, and its latency counts from when it was due, so time spent
waiting for a free connection behind a slow answer is counted (no coordinated omission).
That measures latency at a stated load below saturation, which a closed loop cannot: there,
the latency is the number of connections over the throughput, whatever the server.

Run by bench.loadgen as `python -m bench.pyload --url ... --spec phase.json`; prints the same
`BENCH_JSON {...}` summary line as the wrk script.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path
from typing import Any

import httpx


def _percentile(sorted_values: list[float], pct: float) -> float:
    if not sorted_values:
        return 0.0
    index = min(len(sorted_values) - 1, max(0, round(pct / 100 * len(sorted_values)) - 1))
    return sorted_values[index]


async def _drive(
    url: str, spec: dict[str, Any], duration: float, connections: int, rate: float | None = None
) -> str:
    ids: list[str] = spec["ids"]
    parts: list[str] = spec["parts"]
    slots: list[str] = spec["slots"]
    method: str = spec["method"]
    headers = {"Accept": "application/fhir+json"}
    if method != "GET":
        headers["Content-Type"] = "application/fhir+json"
    latencies: list[float] = []
    errors = {"connect": 0, "read": 0, "status": 0, "timeout": 0}
    counter = 0
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)

    async def send(client: httpx.AsyncClient, n: int, due: float | None) -> None:
        path = spec["base_path"]
        resource_id = ""
        if ids:
            resource_id = ids[(spec["offset"] + n) % len(ids)]
            path = f"{path}/{resource_id}"
        body: bytes | None = None
        if parts:
            seq = f"{spec['tag']}-p-{n}"
            out = [parts[0]]
            for slot, part in zip(slots, parts[1:], strict=True):
                out.append(resource_id if slot == "id" else seq)
                out.append(part)
            body = "".join(out).encode()
        start = time.perf_counter() if due is None else due
        try:
            response = await client.request(method, path, content=body, headers=headers)
        except httpx.TimeoutException:
            errors["timeout"] += 1
            return
        except httpx.ConnectError:
            errors["connect"] += 1
            return
        except httpx.HTTPError:
            errors["read"] += 1
            return
        latencies.append((time.perf_counter() - start) * 1e6)
        if response.status_code > 399:
            errors["status"] += 1

    async def worker(client: httpx.AsyncClient, deadline: float) -> None:
        nonlocal counter
        while time.perf_counter() < deadline:
            counter += 1
            await send(client, counter - 1, None)

    async def scheduler(client: httpx.AsyncClient, started: float, rate: float) -> None:
        # Requests are due at fixed intervals; each runs as its own task and waits for a
        # pooled connection if all are busy (that wait is part of its latency).
        pending: set[asyncio.Task[None]] = set()
        n = 0
        while (due := started + n / rate) < started + duration:
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            task = asyncio.create_task(send(client, n, due))
            pending.add(task)
            task.add_done_callback(pending.discard)
            n += 1
        if pending:
            await asyncio.gather(*pending)

    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=10.0) as client:
        started = time.perf_counter()
        if rate is None:
            deadline = started + duration
            await asyncio.gather(*(worker(client, deadline) for _ in range(connections)))
        else:
            await scheduler(client, started, rate)
        elapsed = time.perf_counter() - started
    latencies.sort()
    summary = {
        "requests": len(latencies) + errors["timeout"] + errors["connect"] + errors["read"],
        "duration_us": int(elapsed * 1e6),
        "p50_us": _percentile(latencies, 50),
        "p99_us": _percentile(latencies, 99),
        "max_us": latencies[-1] if latencies else 0.0,
        **{f"errors_{k}": v for k, v in errors.items()},
    }
    return "BENCH_JSON " + json.dumps(summary)


def main() -> None:
    """Parse the arguments, drive the load, print the summary line."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", required=True)
    parser.add_argument("--spec", required=True, type=Path)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument(
        "--rate", type=float, default=None, help="open loop: requests per second (default: closed)"
    )
    args = parser.parse_args()
    spec = json.loads(args.spec.read_text())
    try:
        import uvloop

        runner: Any = uvloop.run
    except ImportError:  # pragma: no cover - uvloop ships with uvicorn[standard]
        runner = asyncio.run
    print(runner(_drive(args.url, spec, args.duration, args.connections, args.rate)), flush=True)


if __name__ == "__main__":
    main()
