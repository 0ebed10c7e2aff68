"""`python -m bench.search`: bulk-load generated case-management data, then time searches.

For each backend: generate N patients' records (bench/casedata.py, about ten resources
each) into a temporary NDJSON file, load them with the bulk loader (app/services/jobs/bulk.py)
into a fresh database (a SQLite file in a temporary directory, or a fresh PostgreSQL schema
that is dropped afterwards), then start the real server (`casebridge serve`, uvicorn) and
drive typical case-management searches over HTTP with keep-alive connections (wrk, or the
Python asyncio + httpx generator), each request with values drawn at random from the data.

A search that answers an error status fails loudly: the first problem is printed with the
server's OperationOutcome, its row says FAIL and the exit status is 1. Before timing, each
search is tried with `Prefer: handling=strict`, so a parameter the server would silently
ignore counts as an error too.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import shutil
import signal
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlencode

import httpx
from rich import box
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy import event, make_url, text
from sqlalchemy.exc import DBAPIError

from app.clock import Clock
from app.config import Settings
from app.security.caller import OPERATOR
from app.services.container import build_services
from app.services.jobs.bulk import LoadProgress, analyze, bulk_engine, load_ndjson
from app.storage.db import create_db_engine, upgrade
from bench.casedata import CaseDataPools, client_identifier, patient_id, write_ndjson
from bench.loadgen import Generator, LoadResult, Phase, choose_generator, run_phase, scratch_dir
from bench.server import (
    PG_ROOT_URL,
    Server,
    failure_noted,
    fresh_database,
    host_busy_share,
    host_cpu_times,
    host_steal_times,
    pg_problem,
)

BACKENDS = ("sqlite", "postgresql")
LOAD_TARGET = 3000.0  # resources/s
P99_TARGET_MS = 30.0  # selective token and reference searches
QUERIES_PER_SEARCH = 5000
SANITY_REQUESTS = 20


@dataclass(frozen=True)
class Search:
    """One kind of search: a label, whether the p99 target binds, and a query builder."""

    key: str
    label: str
    build: Callable[[random.Random, CaseDataPools], str]
    target: bool = False


def _q(resource_type: str, params: list[tuple[str, str]]) -> str:
    return f"/fhir/{resource_type}?{urlencode(params, quote_via=quote, safe='/')}"


def _patient(rng: random.Random, pools: CaseDataPools) -> str:
    return patient_id(rng.randrange(1, pools.patients + 1))


SEARCHES = (
    Search(
        "a",
        "Task owner + status",
        lambda rng, p: _q(
            "Task",
            [
                ("owner", f"Organization/{rng.choice(p.organization_ids)}"),
                ("status", "requested"),
                ("_count", "20"),
            ],
        ),
        target=True,
    ),
    Search(
        "b",
        "CarePlan subject + status",
        lambda rng, p: _q(
            "CarePlan", [("subject", f"Patient/{_patient(rng, p)}"), ("status", "active")]
        ),
        target=True,
    ),
    Search(
        "c",
        "Observation subject + date range",
        lambda rng, p: _q(
            "Observation",
            [
                ("subject", f"Patient/{_patient(rng, p)}"),
                ("date", "ge2025-01-01"),
                ("date", "lt2026-01-01"),
            ],
        ),
    ),
    Search(
        "d",
        "CarePlan chained subject identifier",
        lambda rng, p: _q(
            "CarePlan",
            [
                (
                    "subject:Patient.identifier",
                    "|".join(client_identifier(rng.randrange(1, p.patients + 1))),
                )
            ],
        ),
    ),
    Search(
        "e",
        "CarePlan subject + _include goal",
        lambda rng, p: _q(
            "CarePlan",
            [("subject", f"Patient/{_patient(rng, p)}"), ("_include", "CarePlan:goal")],
        ),
    ),
    Search(
        "f",
        "Patient family prefix",
        lambda rng, p: _q(
            "Patient", [("family", rng.choice(p.families)[: rng.choice((3, 4))]), ("_count", "20")]
        ),
    ),
    Search(
        "g",
        "Observation code (big type)",
        lambda rng, p: _q(
            "Observation", [("code", rng.choice(p.observation_codes)[1]), ("_count", "20")]
        ),
    ),
    Search(
        "h",
        "Patient identifier (baseline)",
        lambda rng, p: _q(
            "Patient",
            [("identifier", "|".join(client_identifier(rng.randrange(1, p.patients + 1))))],
        ),
        target=True,
    ),
)


@dataclass
class SearchFigures:
    """One timed search: what the generator measured, rows per answer, or why it failed."""

    search: Search
    result: LoadResult | None = None
    rows: float = 0.0
    problem: str | None = None
    # Share of the host's core time the hypervisor took during the timed run.
    steal: float = 0.0


@dataclass
class BackendRun:
    """Everything measured on one backend."""

    name: str
    loaded: int = 0
    load_seconds: float = 0.0
    load_failed: int = 0
    load_host_busy: float = 0.0
    analyze_seconds: float = 0.0
    searches: list[SearchFigures] = field(default_factory=list)
    note: str | None = None

    @property
    def load_rate(self) -> float:
        """Resources stored per second."""
        return self.loaded / self.load_seconds if self.load_seconds > 0 else 0.0


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.search",
        description="Bulk-load generated case-management data and time typical searches.",
    )
    parser.add_argument("--patients", type=int, default=2000, help="patients to generate")
    parser.add_argument("--seed", type=int, default=2026, help="data and query seed")
    parser.add_argument(
        "--backends", default=",".join(BACKENDS), help="comma-separated: sqlite,postgresql"
    )
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per search")
    parser.add_argument("--warmup", type=float, default=1.0, help="warm-up seconds per search")
    parser.add_argument("--connections", type=int, default=8, help="keep-alive connections")
    parser.add_argument(
        "--rate",
        type=float,
        default=None,
        help="open loop: send this many searches per second, each timed from when it was due "
        "(the Python generator, over up to --connections connections), instead of a closed "
        "loop that keeps every connection busy: latency at a stated load below saturation",
    )
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--workers", type=int, default=2, help="server worker processes")
    parser.add_argument(
        "--load-workers", type=int, default=None, help="bulk-load processes (default: CPUs)"
    )
    parser.add_argument(
        "--batch",
        type=int,
        default=None,
        help="resources per load transaction (default: the loader's, 1,000 on SQLite and "
        "4,000 on PostgreSQL)",
    )
    parser.add_argument(
        "--searches", default="", help="only these searches, e.g. a,b,h (default: all)"
    )
    parser.add_argument(
        "--generator", choices=("auto", "wrk", "python"), default="auto", help="load generator"
    )
    parser.add_argument(
        "--no-install", action="store_true", help="do not apt-get install wrk when it is missing"
    )
    parser.add_argument(
        "--load-only", action="store_true", help="measure the bulk load, skip the searches"
    )
    parser.add_argument(
        "--agency",
        default=None,
        help="load the data as this agency's (Organization/{id}) and run every search twice, "
        "side by side: as the unconfined operator and as that agency (the access rule's cost)",
    )
    parser.add_argument(
        "--keep",
        type=Path,
        default=None,
        metavar="DIR",
        help="keep the loaded databases (the SQLite file in DIR, the PostgreSQL schema) and "
        "print their URLs, for later runs with --database",
    )
    parser.add_argument(
        "--database",
        default=None,
        metavar="URL",
        help="search this database, loaded by an earlier run with --keep and the same "
        "--patients, --seed and --agency, instead of loading a fresh one",
    )
    parser.add_argument(
        "--no-warm",
        dest="warm",
        action="store_false",
        help="do not read the database into the OS page cache before each server's searches "
        "(by default they are timed on a warm cache, as after a fresh load, so that re-runs "
        "with --database compare)",
    )
    parser.add_argument(
        "--explain",
        action="store_true",
        help="after the load, print the query plans of the SQL each search issues "
        "(EXPLAIN QUERY PLAN on SQLite, EXPLAIN on PostgreSQL)",
    )
    args = parser.parse_args(argv)
    names = [b.strip() for b in args.backends.split(",") if b.strip()]
    unknown = sorted(set(names) - set(BACKENDS))
    if unknown or not names:
        parser.error(f"--backends: unknown {unknown}; choose from {', '.join(BACKENDS)}")
    if args.patients < 1 or args.duration < 1 or args.connections < 1:
        parser.error("--patients, --duration and --connections must be at least 1")
    if args.rate is not None:
        if args.rate <= 0:
            parser.error("--rate must be positive")
        if args.generator == "wrk":
            parser.error("--rate needs the Python generator: wrk is a closed loop")
        args.generator = "python"
    if args.database:
        names = ["sqlite" if args.database.startswith("sqlite") else "postgresql"]
    args.backends = names
    wanted = {s.strip() for s in args.searches.split(",") if s.strip()}
    if wanted - {s.key for s in SEARCHES}:
        parser.error(f"--searches: choose from {', '.join(s.key for s in SEARCHES)}")
    args.searches = [s for s in SEARCHES if not wanted or s.key in wanted]
    return args


def _load(
    url: str, data: Path, args: argparse.Namespace, run: BackendRun, console: Console
) -> None:
    """Migrate the fresh database and bulk-load the data set into it (timed)."""
    engine = create_db_engine(url)
    try:
        upgrade(engine)
    finally:
        engine.dispose()
    settings = Settings(database_url=url, auth="off")
    engine = bulk_engine(settings)
    columns = (
        TextColumn(f"  [bold]{run.name}[/] loading"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%  {task.fields[loaded]:>10,} stored"),
        TimeElapsedColumn(),
    )
    try:
        with Progress(*columns, console=console, transient=True) as progress:
            task = progress.add_task("load", total=data.stat().st_size, loaded=0)

            def show(step: LoadProgress) -> None:
                progress.update(task, completed=step.bytes_read, loaded=step.loaded)

            host_before = host_cpu_times()
            summary = load_ndjson(
                data,
                engine=engine,
                settings=settings,
                workers=args.load_workers,
                batch_size=args.batch,
                on_progress=show,
                agency=args.agency,
            )
            run.load_host_busy = host_busy_share(host_before, host_cpu_times())
        run.loaded, run.load_seconds, run.load_failed = (
            summary.loaded,
            summary.seconds,
            summary.failed,
        )
        if summary.failed:
            first = summary.failures[0]
            raise RuntimeError(
                f"{summary.failed} generated resources were refused; first: line {first.line}: "
                f"{first.message}"
            )
        started = time.perf_counter()
        analyze(engine)
        run.analyze_seconds = time.perf_counter() - started
    finally:
        engine.dispose()
    console.print(
        f"  loaded {run.loaded:,} resources in {run.load_seconds:.1f} s: "
        f"[bold]{run.load_rate:,.0f} resources/s[/] (host CPU {run.load_host_busy:.0%} busy); "
        f"ANALYZE {run.analyze_seconds:.1f} s"
    )


def _sanity(root_url: str, paths: list[str]) -> tuple[float, str | None]:
    """Try some of a search's requests strictly; (mean rows per answer, first problem)."""
    rows: list[int] = []
    headers = {"Accept": "application/fhir+json", "Prefer": "handling=strict"}
    with httpx.Client(base_url=root_url, timeout=60.0, headers=headers) as client:
        for path in paths[:SANITY_REQUESTS]:
            response = client.get(path)
            if response.status_code != 200:
                return 0.0, f"GET {path} answered {response.status_code}: {response.text[:400]}"
            bundle = response.json()
            entries = bundle.get("entry", [])
            rows.append(sum(1 for e in entries if e.get("search", {}).get("mode") == "match"))
    return statistics.fmean(rows) if rows else 0.0, None


def _first_error(root_url: str, paths: list[str]) -> str:
    """The first error answer among paths (after a timed run counted some)."""
    with httpx.Client(base_url=root_url, timeout=60.0) as client:
        for path in paths[:500]:
            response = client.get(path)
            if response.status_code >= 400:
                return f"GET {path} answered {response.status_code}: {response.text[:400]}"
    return "error answers during the timed run (none seen when replaying the first 500)"


def _searches(
    server: Server,
    run: BackendRun,
    args: argparse.Namespace,
    generator: Generator,
    pools: CaseDataPools,
    console: Console,
    workdir: Path,
) -> None:
    rng = random.Random(args.seed)
    for search in args.searches:
        paths = [search.build(rng, pools) for _ in range(QUERIES_PER_SEARCH)]
        figures = SearchFigures(search)
        run.searches.append(figures)
        figures.rows, figures.problem = _sanity(server.root_url, paths)
        if figures.problem is not None:
            console.print(f"  [red]({search.key}) {search.label}: FAILED[/] {figures.problem}")
            continue
        # Both generators request base_path + "/" + id: the ids are the paths themselves.
        phase = Phase(search.key, "GET", "", ids=[p.lstrip("/") for p in paths])

        def timed(phase: Phase, seconds: float) -> LoadResult:
            return run_phase(
                generator,
                phase,
                root_url=server.root_url,
                duration_s=seconds,
                connections=args.connections,
                threads=args.threads,
                workdir=workdir,
                rate=args.rate,
            )

        if args.warmup > 0:
            timed(Phase(search.key, "GET", "", ids=phase.ids, tag="w"), args.warmup)
        steal_before = host_steal_times()
        result = timed(phase, args.duration)
        figures.steal = host_busy_share(steal_before, host_steal_times())
        figures.result = result
        if result.errors:
            figures.problem = _first_error(server.root_url, paths)
            console.print(f"  [red]({search.key}) {search.label}: {result.errors} errors[/]")
            console.print(f"    {figures.problem}", markup=False)
            continue
        console.print(
            f"  ({search.key}) {search.label:<36} {result.rate:8,.0f} req/s  "
            f"p50 {result.p50_us / 1000:6.1f} ms  p99 {result.p99_us / 1000:6.1f} ms  "
            f"{figures.rows:5.1f} rows  steal {figures.steal:4.1%}"
        )


def explain(
    url: str,
    searches: list[Search],
    pools: CaseDataPools,
    rng: random.Random,
    console: Console,
) -> None:
    """Run one request of each search in-process and print the plan of every SELECT it sent."""
    engine = create_db_engine(url)
    statements: list[tuple[str, Any]] = []

    def capture(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if statement.lstrip().upper().startswith(("SELECT", "WITH")):
            statements.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", capture)
    services = build_services(
        settings=Settings(database_url=url, auth="off"), engine=engine, clock=Clock()
    )
    prefix = "EXPLAIN QUERY PLAN " if engine.dialect.name == "sqlite" else "EXPLAIN "
    try:
        for search in searches:
            path = search.build(rng, pools)
            resource_type, _, query = path.removeprefix("/fhir/").partition("?")
            statements.clear()
            services.search.search(
                caller=OPERATOR, resource_type=resource_type, params=parse_qsl(query), strict=True
            )
            found = list(statements)
            console.print(f"[bold]({search.key}) {search.label}[/]: {unquote(path)}")
            with engine.connect() as conn:
                for statement, parameters in found:
                    console.print(f"  SQL: {' '.join(statement.split())}", markup=False)
                    console.print(f"  parameters: {parameters}", markup=False)
                    plan = conn.exec_driver_sql(prefix + statement, parameters).all()
                    for row in plan:
                        line = str(row[-1]) if engine.dialect.name == "sqlite" else str(row[0])
                        console.print(f"    {line}", markup=False, highlight=False)
    finally:
        event.remove(engine, "before_cursor_execute", capture)
        engine.dispose()


def _backend(
    name: str,
    args: argparse.Namespace,
    data: Path,
    pools: CaseDataPools,
    generator: Generator | None,
    console: Console,
) -> list[BackendRun]:
    run = BackendRun(name)
    runs = [run]
    workdir = scratch_dir()
    keep: Path | None = args.keep
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
    database: contextlib.AbstractContextManager[str] = (
        contextlib.nullcontext(args.database)
        if args.database
        else fresh_database(
            name,
            (keep or workdir).resolve(),
            f"search-{args.patients}-{args.seed}.db",
            keep=keep is not None,
        )
    )
    try:
        with failure_noted(run, name, console), database as url:
            if args.database:
                console.print(f"[bold]{name}[/]: the database loaded earlier, {url}")
            else:
                console.print(f"[bold]{name}[/]: fresh database, bulk load")
                _load(url, data, args, run, console)
                if keep is not None:
                    console.print(f"  kept for --database {url!r}")
            if args.explain:
                explain(url, args.searches, pools, random.Random(args.seed), console)
            if generator is None:
                return runs
            acting: list[tuple[BackendRun, dict[str, str]]] = [(run, {})]
            if args.agency:
                confined = BackendRun(f"{name} as {args.agency}")
                runs.append(confined)
                acting.append((confined, {"CASEBRIDGE_DEFAULT_AGENCY": args.agency}))
            for each, env in acting:
                if args.warm:
                    _warm(url, console)
                server = Server(url, args.workers, workdir, env=env)
                try:
                    console.print(f"  starting the server ({args.workers} workers) {env or ''}")
                    server.start(timeout_s=300)
                    _searches(server, each, args, generator, pools, console, workdir)
                finally:
                    server.stop()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return runs


# A PostgreSQL schema's relations with their TOAST tables and indexes: what its searches read.
_SCHEMA_RELATIONS = """
WITH own AS (
    SELECT oid, reltoastrelid FROM pg_class
    WHERE relnamespace = current_schema()::regnamespace AND relkind IN ('r', 'i', 'm')
)
SELECT coalesce(sum(public.pg_prewarm(c.oid, 'read')), 0) * current_setting('block_size')::bigint
FROM pg_class c
WHERE c.oid IN (SELECT oid FROM own)
   OR c.oid IN (SELECT reltoastrelid FROM own)
   OR c.oid IN (SELECT indexrelid FROM pg_index WHERE indrelid IN (SELECT reltoastrelid FROM own))
"""


def _warm(url: str, console: Console) -> None:
    """Read the database into the OS page cache (these shared hosts reclaim it between runs,
    and a search timed on a cold cache measures the disk)."""
    started = time.perf_counter()
    if make_url(url).get_backend_name() == "sqlite":
        size = 0
        database = Path(make_url(url).database or "")
        for path in (database, database.with_name(database.name + "-wal")):
            if path.is_file():
                with path.open("rb") as f:
                    while chunk := f.read(8 << 20):
                        size += len(chunk)
    else:
        engine = create_db_engine(url)
        try:
            with engine.begin() as conn:
                conn.execute(text("CREATE EXTENSION IF NOT EXISTS pg_prewarm SCHEMA public"))
                size = int(conn.execute(text(_SCHEMA_RELATIONS)).scalar_one())
        except DBAPIError as exc:
            console.print(f"  [yellow]not warmed[/] (pg_prewarm: {exc.orig})")
            return
        finally:
            engine.dispose()
    seconds = time.perf_counter() - started
    console.print(f"  read {size / 2**20:,.0f} MiB into the page cache in {seconds:.1f} s")


def build_table(title: str, runs: list[BackendRun]) -> Table:
    """Load rate and per-search latency per backend, against the targets."""
    table = Table(title=title, box=box.SIMPLE_HEAVY, title_justify="left")
    for name, justify in [
        ("Backend", "left"),
        ("Measure", "left"),
        ("Rate", "right"),
        ("p50", "right"),
        ("p99", "right"),
        ("max", "right"),
        ("Steal", "right"),
        ("Requests", "right"),
        ("Err", "right"),
        ("Rows", "right"),
        ("Target", "left"),
        ("Result", "left"),
    ]:
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for run in runs:
        table.add_section()
        if run.loaded:
            met = run.load_rate >= LOAD_TARGET
            table.add_row(
                run.name,
                f"bulk load ({run.loaded:,} resources)",
                f"{run.load_rate:,.0f}/s",
                *[""] * 7,
                f"≥{LOAD_TARGET:,.0f}/s",
                "[green]PASS" if met else "[red]MISS",
            )
        if run.note:
            table.add_row(run.name, f"[yellow]{run.note[:80]}", *[""] * 10)
        for fig in run.searches:
            label = f"({fig.search.key}) {fig.search.label}"
            target = f"p99<{P99_TARGET_MS:.0f}ms" if fig.search.target else ""
            res = fig.result
            if res is None:
                table.add_row(run.name, label, *[""] * 8, target, "[red]FAIL (error status)")
                continue
            p99 = res.p99_us / 1000
            if fig.problem:
                verdict = "[red]FAIL (error status)"
            elif not fig.search.target:
                verdict = "[dim]info"
            else:
                verdict = "[green]PASS" if p99 < P99_TARGET_MS else "[red]MISS"
            table.add_row(
                run.name,
                label,
                f"{res.rate:,.0f}/s",
                f"{res.p50_us / 1000:.1f} ms",
                f"{p99:.1f} ms",
                f"{res.max_us / 1000:.0f} ms",
                f"{fig.steal:.1%}",
                f"{res.requests:,}",
                f"[red]{res.errors:,}" if res.errors else "0",
                f"{fig.rows:.1f}",
                target,
                verdict,
            )
    return table


def _interrupt(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def _run(args: argparse.Namespace, console: Console) -> int:
    generator = None
    if not args.load_only:
        generator = choose_generator(args.generator, console, install=not args.no_install)
        console.print(f"Load generator: [bold]{generator.label}[/]")
    datadir = scratch_dir()
    try:
        data = datadir / "cases.ndjson"
        started = time.perf_counter()
        # With --database the data is only generated again for its value pools.
        with data.open("wb") if not args.database else open(os.devnull, "wb") as out:
            pools = write_ndjson(out, args.patients, seed=args.seed)
        console.print(
            f"Generated {pools.total:,} resources for {args.patients:,} patients in "
            f"{time.perf_counter() - started:.1f} s"
            + (f" ({data.stat().st_size / 1e6:,.0f} MB)" if data.exists() else "")
            + ": "
            + ", ".join(f"{k} {v:,}" for k, v in sorted(pools.counts.items()))
        )
        runs: list[BackendRun] = []
        for name in args.backends:
            if name == "postgresql" and (problem := pg_problem()) is not None:
                note = f"skipped: PostgreSQL at {PG_ROOT_URL} does not answer ({problem})"
                console.print(f"[yellow]{note}")
                runs.append(BackendRun(name, note=note))
                continue
            runs.extend(_backend(name, args, data, pools, generator, console))
    finally:
        shutil.rmtree(datadir, ignore_errors=True)
    title = (
        f"casebridge search benchmark — {pools.total:,} resources ({args.patients:,} patients); "
        + (
            (
                f"{generator.label}, open loop at {args.rate:g} searches/s over up to "
                f"{args.connections} connections"
                if args.rate is not None
                else f"{generator.label}, {args.connections} connections"
            )
            + f", {args.workers} server workers, {args.duration:g} s per search"
            if generator is not None
            else "load only"
        )
        + f"; {os.cpu_count()} CPUs"
    )
    console.print()
    console.print(build_table(title, runs))
    console.print(
        "Load rate: resources stored per second by `casebridge load`'s loader (validation on "
        "a process pool, batched inserts), ANALYZE excluded. Search rates are completed "
        "requests/s with random values per request; p50/p99/max are client-side latencies; "
        "Rows is the mean number of matches per answer in a strict trial of each search; Steal "
        "is the share of the host's core time the hypervisor took during the timed run."
    )
    failed = any(
        (run.note and run.note.startswith("failed")) or any(f.problem for f in run.searches)
        for run in runs
    )
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments, run, print the table; servers and schemas are removed on Ctrl-C."""
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
