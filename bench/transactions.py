"""`python -m bench.transactions`: validated ingest through transaction Bundles.

For each backend: a fresh database (a SQLite file in a temporary directory, or a fresh
PostgreSQL schema dropped afterwards), the real server (`casebridge serve`, uvicorn) as a
subprocess, then transaction Bundles posted one after another over one keep-alive
connection. The Bundles hold typical case-management records from bench/casedata.py
(Patient, Goal, CarePlan, ServiceRequest, Task, Observation; about ten per client) as POST
entries with urn:uuid fullUrls: the CarePlans, Tasks and the rest refer to their Patient,
Goals and ServiceRequests by those urn:uuids, so the server validates every resource,
assigns ids and rewrites the references, all in one database transaction per Bundle. A
client's records are never split across two Bundles, so a Bundle holds up to --size
entries. The organizations the records name are loaded first (not timed).

Every Bundle must answer 200 with one "201 Created" per entry; afterwards the stored counts
per type and a sample of rewritten references are checked. The table gives, per backend,
the median and p90 seconds per Bundle (client-side) and resources stored per second.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

import httpx
import orjson
from rich import box
from rich.console import Console
from rich.table import Table

from bench.casedata import generate, organizations
from bench.loadgen import scratch_dir
from bench.server import (
    PG_ROOT_URL,
    Server,
    failure_noted,
    fresh_database,
    host_busy_share,
    host_cpu_times,
    pg_problem,
)

BACKENDS = ("sqlite", "postgresql")
TARGET = 1000.0  # resources/s through transaction Bundles, on SQLite
_HEADERS = {"Content-Type": "application/fhir+json", "Accept": "application/fhir+json"}
_URN_NAMESPACE = uuid.UUID("6f1c1d52-6c43-4f4e-9a57-1d3c2b7f0e11")


@dataclass
class Batch:
    """One transaction Bundle, serialised, and what it holds."""

    body: bytes
    entries: int
    counts: dict[str, int]


@dataclass
class BackendRun:
    """Seconds per Bundle on one backend, or why there are none."""

    name: str
    seconds: list[float] = field(default_factory=list)
    resources: int = 0
    server_cpu_s: float = 0.0
    host_busy: list[float] = field(default_factory=list)
    note: str | None = None

    @property
    def rate(self) -> float:
        """Resources stored per second over the timed Bundles."""
        total = sum(self.seconds)
        return self.resources / total if total > 0 else 0.0


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(share * (len(ordered) - 1))))
    return ordered[index]


def _client_groups(seed: int) -> Iterator[list[dict[str, Any]]]:
    """One client's records at a time, as POST entries linked by urn:uuid fullUrls."""
    group: list[dict[str, Any]] = []
    urns: dict[str, str] = {}
    # casedata yields organizations first, then each client's records, Patient first; it
    # is a generator, so asking for many clients costs nothing until they are consumed.
    for resource in generate(10**7, seed=seed):
        kind = resource["resourceType"]
        if kind == "Organization":
            continue
        if kind == "Patient":
            if group:
                yield group
            group, urns = [], {}
        reference = f"{kind}/{resource.pop('id')}"
        urn = f"urn:uuid:{uuid.uuid5(_URN_NAMESPACE, f'{seed}/{reference}')}"
        urns[reference] = urn
        _link(resource, urns)
        group.append(
            {"fullUrl": urn, "resource": resource, "request": {"method": "POST", "url": kind}}
        )


def _link(value: Any, urns: dict[str, str]) -> None:
    """Replace references to records of the same client by their urn:uuid."""
    if isinstance(value, dict):
        target = value.get("reference")
        if isinstance(target, str) and target in urns:
            value["reference"] = urns[target]
        for item in value.values():
            if isinstance(item, (dict, list)):
                _link(item, urns)
    elif isinstance(value, list):
        for item in value:
            _link(item, urns)


def build_batches(count: int, size: int, seed: int) -> list[Batch]:
    """count transaction Bundles of up to size entries, whole clients each."""
    batches: list[Batch] = []
    entries: list[dict[str, Any]] = []
    groups = _client_groups(seed)

    def close() -> None:
        counts: dict[str, int] = {}
        for entry in entries:
            kind = entry["resource"]["resourceType"]
            counts[kind] = counts.get(kind, 0) + 1
        bundle = {"resourceType": "Bundle", "type": "transaction", "entry": entries}
        batches.append(Batch(orjson.dumps(bundle), len(entries), counts))

    for group in groups:
        if len(group) > size:
            raise ValueError(f"--size {size} is smaller than one client's {len(group)} records")
        if len(entries) + len(group) > size:
            close()
            entries = []
            if len(batches) == count:
                break
        entries.extend(group)
    return batches


def _organizations_bundle() -> bytes:
    entries = [
        {"resource": org, "request": {"method": "PUT", "url": f"Organization/{org['id']}"}}
        for org in organizations()
    ]
    return orjson.dumps({"resourceType": "Bundle", "type": "transaction", "entry": entries})


def _check_response(response: httpx.Response, batch: Batch) -> None:
    if response.status_code != 200:
        raise RuntimeError(f"a Bundle answered {response.status_code}: {response.text[:600]}")
    body = orjson.loads(response.content)
    statuses = [entry["response"]["status"] for entry in body.get("entry", [])]
    if body.get("type") != "transaction-response" or len(statuses) != batch.entries:
        raise RuntimeError(f"unexpected response: {response.text[:600]}")
    if any(status != "201 Created" for status in statuses):
        raise RuntimeError(f"an entry was not created: {sorted(set(statuses))}")


def _check_stored(client: httpx.Client, expected: dict[str, int]) -> None:
    """Stored counts per type match what was posted, and references were rewritten."""
    for kind, count in sorted(expected.items()):
        response = client.get(f"/fhir/{kind}", params={"_summary": "count"})
        total = orjson.loads(response.content).get("total")
        if response.status_code != 200 or total != count:
            raise RuntimeError(f"{kind}: {total} stored, {count} posted")
    sample = client.get("/fhir/CarePlan", params={"_count": "20"})
    text = sample.text
    if sample.status_code != 200 or "urn:uuid" in text or '"Goal/' not in text:
        raise RuntimeError(f"CarePlan references were not rewritten: {text[:600]}")


def _measure(
    server: Server, batches: list[Batch], warmup: int, console: Console, run: BackendRun
) -> None:
    expected: dict[str, int] = {}
    with httpx.Client(base_url=server.root_url, timeout=600.0, headers=_HEADERS) as client:
        organizations_response = client.post("/fhir", content=_organizations_bundle())
        if organizations_response.status_code != 200:
            raise RuntimeError(f"organizations: {organizations_response.text[:600]}")
        for number, batch in enumerate(batches):
            timed = number >= warmup
            cpu_before = server.cpu_seconds()
            host_before = host_cpu_times()
            started = time.perf_counter()
            response = client.post("/fhir", content=batch.body)
            elapsed = time.perf_counter() - started
            cpu = server.cpu_seconds() - cpu_before
            host = host_busy_share(host_before, host_cpu_times())
            _check_response(response, batch)
            for kind, count in batch.counts.items():
                expected[kind] = expected.get(kind, 0) + count
            label = "warm-up" if not timed else f"bundle {number - warmup + 1}"
            console.print(
                f"  {label:<10} {batch.entries:5,} entries {len(batch.body) / 1e6:5.2f} MB "
                f"{elapsed:6.3f} s  {batch.entries / elapsed:7,.0f} resources/s"
            )
            if timed:
                run.seconds.append(elapsed)
                run.resources += batch.entries
                run.server_cpu_s += cpu
                run.host_busy.append(host)
        _check_stored(client, expected)


def _backend(
    name: str, args: argparse.Namespace, batches: list[Batch], console: Console
) -> BackendRun:
    run = BackendRun(name)
    if name == "postgresql" and (problem := pg_problem()) is not None:
        run.note = f"skipped: PostgreSQL at {PG_ROOT_URL} does not answer ({problem})"
        console.print(f"[yellow]{run.note}")
        return run
    workdir = scratch_dir()
    try:
        with failure_noted(run, name, console), fresh_database(name, workdir) as url:
            env = {} if args.acting == "operator" else {"CASEBRIDGE_DEFAULT_AGENCY": args.acting}
            server = Server(url, args.workers, workdir, env=env)
            try:
                console.print(f"[bold]{name}[/]: starting the server ({args.workers} workers)")
                server.start()
                _measure(server, batches, args.warmup, console, run)
            finally:
                server.stop()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return run


def build_table(title: str, runs: list[BackendRun]) -> Table:
    """Per backend: Bundles timed, entries, median and p90 s per Bundle, resources/s."""
    table = Table(title=title, box=box.SIMPLE_HEAVY, title_justify="left")
    for name, justify in [
        ("Backend", "left"),
        ("Bundles", "right"),
        ("Entries/Bundle", "right"),
        ("Median s/Bundle", "right"),
        ("p90 s/Bundle", "right"),
        ("Resources/s", "right"),
        ("Srv CPU/resource", "right"),
        ("Host CPU", "right"),
        ("Target", "left"),
        ("Result", "left"),
    ]:
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for run in runs:
        binding = run.name == "sqlite"
        if not run.seconds:
            table.add_row(run.name, *[""] * 8, f"[yellow]{(run.note or 'no data')[:60]}")
            continue
        met = run.rate >= TARGET
        if binding:
            verdict = "[green]PASS" if met else "[red]MISS"
        else:
            verdict = "[dim]info: pass" if met else "[dim]info: miss"
        if run.note:
            verdict = f"[red]{run.note[:60]}"
        table.add_row(
            run.name,
            f"{len(run.seconds):,}",
            f"{run.resources / len(run.seconds):,.0f}",
            f"{statistics.median(run.seconds):.3f}",
            f"{_percentile(run.seconds, 0.9):.3f}",
            f"{run.rate:,.0f}",
            f"{run.server_cpu_s / run.resources * 1000:.2f} ms",
            f"{statistics.mean(run.host_busy) * 100:.0f}%",
            f"≥{TARGET:,.0f}/s",
            verdict,
        )
    return table


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.transactions",
        description="Time validated ingest of case-management records via transaction Bundles.",
    )
    parser.add_argument(
        "--backends", default=",".join(BACKENDS), help="comma-separated: sqlite,postgresql"
    )
    parser.add_argument("--bundles", type=int, default=10, help="timed Bundles per backend")
    parser.add_argument("--size", type=int, default=1000, help="most entries per Bundle")
    parser.add_argument("--warmup", type=int, default=1, help="untimed Bundles first")
    parser.add_argument("--workers", type=int, default=1, help="server worker processes")
    parser.add_argument("--seed", type=int, default=2026, help="data seed")
    parser.add_argument(
        "--as",
        dest="acting",
        default="operator",
        help="operator (unconfined), or the agency Organization/{id} the Bundles act for "
        "(its access rules, owner rows, audit and Provenance on every entry)",
    )
    parser.add_argument("--check", action="store_true", help="exit 2 when SQLite misses the target")
    args = parser.parse_args(argv)
    names = [b.strip() for b in args.backends.split(",") if b.strip()]
    unknown = sorted(set(names) - set(BACKENDS))
    if unknown or not names:
        parser.error(f"--backends: unknown {unknown}; choose from {', '.join(BACKENDS)}")
    if args.bundles < 1 or args.size < 20 or args.warmup < 0 or args.workers < 1:
        parser.error("--bundles and --workers must be at least 1, --size at least 20")
    args.backends = names
    return args


def _interrupt(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def _run(args: argparse.Namespace, console: Console) -> int:
    before = host_cpu_times()
    time.sleep(1.0)
    background = host_busy_share(before, host_cpu_times())
    style = "[yellow]" if background > 0.1 else ""
    console.print(
        f"{style}Host CPU busy before starting (1 s sample): {background:.0%}"
        + (" — other processes are using this machine; figures will be noisy" if style else "")
    )
    started = time.perf_counter()
    batches = build_batches(args.warmup + args.bundles, args.size, args.seed)
    kinds: dict[str, int] = {}
    for batch in batches:
        for kind, count in batch.counts.items():
            kinds[kind] = kinds.get(kind, 0) + count
    console.print(
        f"Built {len(batches)} transaction Bundles ({args.warmup} warm-up) of up to "
        f"{args.size:,} entries in {time.perf_counter() - started:.1f} s: "
        + ", ".join(f"{k} {v:,}" for k, v in sorted(kinds.items()))
    )
    runs = [_backend(name, args, batches, console) for name in args.backends]
    title = (
        f"casebridge transaction benchmark — {args.bundles} Bundles of up to {args.size:,} "
        f"entries after {args.warmup} warm-up, one at a time; {args.workers} server "
        f"worker(s); {os.cpu_count()} CPUs"
    )
    console.print()
    console.print(build_table(title, runs))
    console.print(
        "Seconds per Bundle are client-side, from sending the Bundle to the whole "
        "transaction-response; Resources/s is resources stored over the timed Bundles' total "
        "time; Srv CPU/resource is the server's processes' CPU time (not PostgreSQL's); Host "
        f"CPU is how busy all {os.cpu_count()} cores were during the timed Bundles ("
        f"{background:.0%} before the run). The target binds on SQLite; PostgreSQL is shown "
        "against it for information."
    )
    for run in runs:
        if run.note:
            console.print(f"[yellow]{run.name}: {run.note}")
    if any(run.note and run.note.startswith("failed") for run in runs):
        return 1
    sqlite = next((run for run in runs if run.name == "sqlite" and run.seconds), None)
    return 2 if args.check and sqlite is not None and sqlite.rate < TARGET else 0


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments, run, print the table; servers and schemas go away on Ctrl-C."""
    args = _parse(argv)
    console = Console()
    if not console.is_terminal:
        console = Console(width=200)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        return _run(args, console)
    except KeyboardInterrupt:
        console.print("[yellow]interrupted: the servers, temporary files and schemas were removed")
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
