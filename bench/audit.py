"""`python -m bench.audit`: what auditing every read costs, measured side by side.

For each backend: one fresh database, two real servers on it (`casebridge serve`, the same
settings but CASEBRIDGE_AUDIT_READS=false on one and true on the other), CarePlans seeded,
then the read phase (GET /fhir/CarePlan/{id}, keep-alive, wrk or the Python generator) run
against each server in turn, alternating for a number of rounds so that drift of the
machine affects both alike. The table gives read throughput and p50/p99 latency with the
read audit off and on, and how many AuditEvents the audited server wrote.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
from collections.abc import Iterator
from dataclasses import dataclass, field

from rich import box
from rich.console import Console
from rich.table import Table
from sqlalchemy import func, select

from app.storage.db import create_db_engine
from app.storage.tables import audit_event_table
from bench import client
from bench.loadgen import Generator, LoadResult, Phase, choose_generator, run_phase, scratch_dir
from bench.server import PG_ROOT_URL, Server, failure_noted, fresh_database, pg_problem

BACKENDS = ("sqlite", "postgresql")
MODES = ("off", "on")


@dataclass
class AuditRun:
    """The read figures of one backend, per mode, one LoadResult a round."""

    name: str
    results: dict[str, list[LoadResult]] = field(default_factory=lambda: {m: [] for m in MODES})
    # Server CPU seconds spent during each mode's timed runs (the flush thread included).
    cpu: dict[str, float] = field(default_factory=lambda: dict.fromkeys(MODES, 0.0))
    audit_rows: int = 0
    note: str | None = None


@contextlib.contextmanager
def _environment(**values: str) -> Iterator[None]:
    """Set environment variables for a server started inside (it copies os.environ)."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.audit", description=__doc__)
    parser.add_argument("--duration", type=float, default=4.0, help="seconds per timed run")
    parser.add_argument("--warmup", type=float, default=2.0, help="warm-up seconds per server")
    parser.add_argument("--rounds", type=int, default=4, help="off/on alternations")
    parser.add_argument("--backends", default=",".join(BACKENDS))
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2, help="worker processes per server")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--ids", type=int, default=1000, help="CarePlans seeded")
    parser.add_argument("--generator", choices=("auto", "wrk", "python"), default="auto")
    parser.add_argument("--no-install", action="store_true", help="never apt-get install wrk")
    args = parser.parse_args(argv)
    names = [b.strip() for b in args.backends.split(",") if b.strip()]
    if not names or set(names) - set(BACKENDS):
        parser.error(f"--backends: choose from {', '.join(BACKENDS)}")
    if args.duration < 1 or args.rounds < 1 or args.ids < 1 or args.connections < 1:
        parser.error("--duration, --rounds, --ids and --connections must be at least 1")
    args.backends = names
    return args


def _measure(
    args: argparse.Namespace, generator: Generator, console: Console, run: AuditRun, url: str
) -> None:
    workdir = scratch_dir()
    servers: dict[str, Server] = {}
    try:
        for mode in MODES:
            with _environment(CASEBRIDGE_AUDIT_READS="true" if mode == "on" else "false"):
                servers[mode] = Server(url, args.workers, workdir)
                servers[mode].start()
        client.sanity_check(servers["off"].root_url)
        console.print(f"  seeding {args.ids:,} CarePlans")
        ids = client.seed(servers["off"].root_url, args.ids, args.connections)
        phase = Phase("read", "GET", "/fhir/CarePlan", ids=ids)

        def load(mode: str, seconds: float, tag: str) -> LoadResult:
            return run_phase(
                generator,
                Phase(phase.name, phase.method, phase.base_path, ids=ids, tag=tag),
                root_url=servers[mode].root_url,
                duration_s=seconds,
                connections=args.connections,
                threads=args.threads,
                workdir=workdir,
            )

        for mode in MODES:
            if args.warmup > 0:
                load(mode, max(1.0, args.warmup), f"w{mode}")
        for round_no in range(args.rounds):
            for mode in MODES if round_no % 2 == 0 else MODES[::-1]:
                cpu_before = servers[mode].cpu_seconds()
                result = load(mode, args.duration, f"m{mode}{round_no}")
                run.cpu[mode] += servers[mode].cpu_seconds() - cpu_before
                run.results[mode].append(result)
                console.print(
                    f"  audit {mode:<3} {result.rate:9,.0f} req/s  p50 "
                    f"{result.p50_us / 1000:6.2f} ms  p99 {result.p99_us / 1000:6.2f} ms  "
                    f"errors {result.errors}"
                )
    finally:
        for server in servers.values():
            server.stop()  # the audited one flushes its queue on the way out
        shutil.rmtree(workdir, ignore_errors=True)
    engine = create_db_engine(url)
    try:
        with engine.connect() as conn:
            reads = audit_event_table.c.subtype == "read"
            run.audit_rows = int(conn.execute(select(func.count()).where(reads)).scalar_one())
    finally:
        engine.dispose()


def _table(title: str, runs: list[AuditRun]) -> Table:
    table = Table(title=title, box=box.SIMPLE_HEAVY)
    columns = ("Backend", "Read audit", "Reads/s", "p50 ms", "p99 ms", "CPU us/read", "Errors")
    for column in (*columns, "Note"):
        table.add_column(column, justify="left" if column in ("Backend", "Note") else "right")
    for run in runs:
        if run.note and not any(run.results.values()):
            table.add_row(run.name, "", "", "", "", "", "", run.note)
            continue
        rates: dict[str, float] = {}
        cpus: dict[str, float] = {}
        for mode in MODES:
            results = run.results[mode]
            if not results:
                continue
            requests = sum(r.requests for r in results)
            rate = requests / sum(r.duration_s for r in results)
            rates[mode] = rate
            cpu_us = run.cpu[mode] / requests * 1e6 if requests else 0.0
            cpus[mode] = cpu_us
            note = ""
            if mode == "on" and "off" in rates and rates["off"] > 0:
                note = (
                    f"{rate / rates['off'] - 1:+.1%} throughput, "
                    f"{cpu_us / cpus['off'] - 1:+.1%} server CPU a read; "
                    f"{run.audit_rows:,} read AuditEvents written"
                )
            table.add_row(
                run.name,
                mode,
                f"{rate:,.0f}",
                f"{statistics.median(r.p50_us for r in results) / 1000:.2f}",
                f"{statistics.median(r.p99_us for r in results) / 1000:.2f}",
                f"{cpu_us:,.0f}",
                str(sum(r.errors for r in results)),
                note or (run.note or ""),
            )
    return table


def main(argv: list[str] | None = None) -> int:
    """Run the comparison on each backend and print the table."""
    args = _parse(argv)
    console = Console() if Console().is_terminal else Console(width=200)
    generator = choose_generator(args.generator, console, install=not args.no_install)
    runs: list[AuditRun] = []
    for name in args.backends:
        run = AuditRun(name)
        runs.append(run)
        if name == "postgresql" and (problem := pg_problem()) is not None:
            run.note = f"skipped: PostgreSQL at {PG_ROOT_URL} does not answer ({problem})"
            continue
        console.print(f"[bold]{name}[/]: two servers ({args.workers} workers each), audit off/on")
        workdir = scratch_dir()
        try:
            with failure_noted(run, name, console), fresh_database(name, workdir) as url:
                _measure(args, generator, console, run, url)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
    title = (
        f"Read audit cost — {generator.label}; {args.connections} connections, "
        f"{args.workers} workers per server, {args.rounds} x {args.duration:g} s per mode, "
        "127.0.0.1"
    )
    console.print()
    console.print(_table(title, runs))
    console.print(
        "Reads/s is over all timed runs of a mode; p50/p99 are the medians of the runs' "
        "client-side latencies; CPU us/read is the server processes' CPU time (request "
        "handling and the audit's flush thread, not the database's) per read. Both servers "
        "share the database and this machine's cores: CPU per read is the steadier measure "
        "when other work runs on the machine."
    )
    return 1 if any(r.note and r.note.startswith("failed") for r in runs) else 0


if __name__ == "__main__":
    raise SystemExit(main())
