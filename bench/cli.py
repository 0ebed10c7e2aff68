"""`python -m bench`: run the CarePlan benchmark on each backend and print the report."""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import threading
import time
from dataclasses import replace
from pathlib import Path
from types import FrameType

from rich.console import Console

from bench import client, profile
from bench.loadgen import Generator, LoadResult, Phase, choose_generator, run_phase, scratch_dir
from bench.payload import body_template, care_plan_bytes
from bench.report import BackendFigures, PhaseFigures, build_table, misses
from bench.server import (
    PG_ROOT_URL,
    FloorServer,
    Server,
    fresh_database,
    host_busy_share,
    host_cpu_times,
    pg_problem,
)
from bench.validation import measure_validation

BACKENDS = ("sqlite", "sqlite-normal", "postgresql")
# sqlite-normal: SQLite with CASEBRIDGE_SQLITE_SYNCHRONOUS=NORMAL (the faster mode, which
# may lose the writes acknowledged just before a power cut), run as the first of --as only:
# beside the default FULL it shows what durability costs.
SYNCHRONOUS_NORMAL = "sqlite-normal"
# The agency the requests act for in the "as an agency" runs (auth off: the server's
# CASEBRIDGE_DEFAULT_AGENCY), so access checks, owner rows and audit run as in production.
BENCH_AGENCY = "Organization/bench-agency"
PHASES = ("create", "read", "update")
# The floor app's figures in the table (bench/floor.py).
FLOOR = "floor"
# What casebridge should reach of the floor, with audit, Provenance, access rules and
# subscriptions on (issue 17): creates and reads of the floor's, updates of its creates.
FLOOR_TARGETS = {"create": 0.5, "read": 0.6, "update": 0.4}


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Benchmark CarePlan create/read/update against the real casebridge server.",
    )
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per phase")
    parser.add_argument("--warmup", type=float, default=2.0, help="warm-up seconds per phase")
    parser.add_argument(
        "--backends", default=",".join(BACKENDS), help="comma-separated: sqlite,postgresql"
    )
    parser.add_argument("--connections", type=int, default=16, help="concurrent connections")
    parser.add_argument("--workers", type=int, default=2, help="server worker processes")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--ids", type=int, default=2000, help="resources seeded for read/update")
    parser.add_argument(
        "--generator",
        choices=("auto", "wrk", "python"),
        default="auto",
        help="load generator (auto: wrk if available, else Python)",
    )
    parser.add_argument(
        "--no-install", action="store_true", help="do not apt-get install wrk when it is missing"
    )
    parser.add_argument(
        "--validation-seconds", type=float, default=3.0, help="length of the validation loop"
    )
    parser.add_argument(
        "--profile",
        nargs="?",
        const="create",
        default="",
        metavar="PHASES",
        help="py-spy one worker during these timed phases (default: create) and print where "
        "its threads were; needs py-spy (`.venv/bin/pip install py-spy`)",
    )
    parser.add_argument(
        "--check", action="store_true", help="exit 2 when a SQLite target is missed"
    )
    parser.add_argument(
        "--no-floor",
        dest="floor",
        action="store_false",
        help="do not run the floor app (bench/floor.py) beside the server",
    )
    parser.add_argument(
        "--as",
        dest="acting",
        default=f"operator,{BENCH_AGENCY}",
        help="comma-separated: operator (unconfined) and/or an agency Organization/{id}; each "
        "runs on a fresh database beside the other, so the access rules' cost shows",
    )
    args = parser.parse_args(argv)
    names = [b.strip() for b in args.backends.split(",") if b.strip()]
    unknown = sorted(set(names) - set(BACKENDS))
    if unknown or not names:
        parser.error(f"--backends: unknown {unknown}; choose from {', '.join(BACKENDS)}")
    if args.duration < 1 or args.connections < 1 or args.workers < 1 or args.ids < 1:
        parser.error("--duration, --connections, --workers and --ids must be at least 1")
    args.backends = names
    args.acting = [a.strip() for a in args.acting.split(",") if a.strip()]
    if not args.acting or any(
        a != "operator" and not a.startswith("Organization/") for a in args.acting
    ):
        parser.error("--as: operator or Organization/{id}, comma-separated")
    args.profile = {p.strip() for p in args.profile.split(",") if p.strip()}
    if args.profile - set(PHASES):
        parser.error(f"--profile: phases are {', '.join(PHASES)}")
    return args


def _interrupt(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


class StorageWatch:
    """The SQLite files' sizes while a phase runs: the WAL's peak (sampled every 20 ms) and,
    at the end, database and WAL bytes per resource written (nothing for PostgreSQL)."""

    def __init__(self, database_url: str) -> None:
        path = database_url.removeprefix("sqlite:///")
        self.database = Path(path) if database_url.startswith("sqlite:///") else None
        self.wal = Path(f"{path}-wal")
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _size(self, path: Path) -> int:
        try:
            return path.stat().st_size
        except FileNotFoundError:
            return 0

    def _sample(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, self._size(self.wal))

    def __enter__(self) -> StorageWatch:
        if self.database is not None:
            self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        if self.database is not None:
            self._thread.join()

    def report(self, resources: int) -> str:
        """One line: what the writes cost on disk."""
        assert self.database is not None
        per = max(resources, 1)
        db, wal = self._size(self.database), self._size(self.wal)
        return (
            f"  storage after {resources:,} CarePlans: database {db / per / 1024:,.1f} KB per "
            f"resource; WAL peak {self.peak / 2**20:,.1f} MiB ({self.peak / per / 1024:,.1f} KB "
            f"per resource), {wal / 2**20:,.1f} MiB now"
        )


class Runner:
    """Runs the phases of one backend against one started server."""

    def __init__(
        self, args: argparse.Namespace, generator: Generator, console: Console, workdir: Path
    ) -> None:
        self.args = args
        self.generator = generator
        self.console = console
        self.workdir = workdir
        self.profiles: list[str] = []

    def _load(self, server: Server, phase: Phase, duration_s: float) -> LoadResult:
        return run_phase(
            self.generator,
            phase,
            root_url=server.root_url,
            duration_s=duration_s,
            connections=self.args.connections,
            threads=self.args.threads,
            workdir=self.workdir,
        )

    def phase(self, server: Server, phase: Phase, backend: str) -> PhaseFigures:
        """Warm up, then measure one phase; CPU figures cover the measured part only."""
        args = self.args
        if args.warmup > 0:
            self._load(server, replace(phase, tag="w"), max(1.0, args.warmup))
        sampler = None
        if phase.name in args.profile:
            sampler = profile.start(server.worker_pids(), args.duration, self.workdir)
        cpu_before = server.cpu_seconds()
        host_before = host_cpu_times()
        result = self._load(server, phase, args.duration)
        cpu = server.cpu_seconds() - cpu_before
        host = host_busy_share(host_before, host_cpu_times())
        if sampler is not None:
            label = f"the timed {backend} {phase.name} phase"
            self.profiles.append(profile.finish(sampler, label))
        self.console.print(
            f"  {phase.name:<6} {result.rate:9,.0f} req/s  p50 {result.p50_us / 1000:6.1f} ms  "
            f"p99 {result.p99_us / 1000:6.1f} ms  errors {result.errors}"
        )
        return PhaseFigures(result, cpu, host)

    def backend(self, name: str, database_url: str, acting: str) -> BackendFigures:
        """Start a server on database_url and run create, read and update."""
        env = {} if acting == "operator" else {"CASEBRIDGE_DEFAULT_AGENCY": acting}
        if name == SYNCHRONOUS_NORMAL:
            env["CASEBRIDGE_SQLITE_SYNCHRONOUS"] = "NORMAL"
        server = Server(database_url, self.args.workers, self.workdir, env=env)
        return self.serve(BackendFigures(name, acting=acting), server, database_url)

    def floor(self) -> BackendFigures:
        """The same phases against the floor app (bench/floor.py)."""
        server = FloorServer(self.args.workers, self.workdir)
        return self.serve(BackendFigures(FLOOR), server, server.database_url)

    def serve(self, figures: BackendFigures, server: Server, database_url: str) -> BackendFigures:
        """Start server and run create, read and update against it."""
        args = self.args
        name = figures.name
        try:
            self.console.print(
                f"[bold]{figures.label}[/]: starting the server ({args.workers} workers)"
            )
            server.start()
            client.sanity_check(server.root_url)
            parts, slots = body_template(with_id=False)
            create = Phase("create", "POST", "/fhir/CarePlan", parts=parts, slots=slots)
            with StorageWatch(database_url) as storage:
                figures.phases["create"] = self.phase(server, create, name)
            if storage.database is not None:
                self.console.print(storage.report(client.count(server.root_url, "CarePlan")))
            self.console.print(f"  seeding {args.ids:,} CarePlans for read and update")
            ids = client.seed(server.root_url, args.ids, args.connections)
            read = Phase("read", "GET", "/fhir/CarePlan", ids=ids, offset=len(ids) // 2)
            figures.phases["read"] = self.phase(server, read, name)
            parts, slots = body_template(with_id=True)
            update = Phase(
                "update", "PUT", "/fhir/CarePlan", ids=ids, parts=parts, slots=slots,
                offset=len(ids) // 2,
            )  # fmt: skip
            figures.phases["update"] = self.phase(server, update, name)
        except Exception as exc:  # report the failure in the table, go on with other backends
            figures.note = f"failed: {type(exc).__name__}: {str(exc)[:300]}"
            self.console.print(f"[red]{name} failed:[/] {exc}")
        finally:
            server.stop()
        return figures


def _run(args: argparse.Namespace, console: Console) -> int:
    generator = choose_generator(args.generator, console, install=not args.no_install)
    console.print(f"Load generator: [bold]{generator.label}[/]")
    before = host_cpu_times()
    time.sleep(1.0)
    background = host_busy_share(before, host_cpu_times())
    style = "[yellow]" if background > 0.1 else ""
    console.print(
        f"{style}Host CPU busy before starting (1 s sample): {background:.0%}"
        + (" — other processes are using this machine; figures will be noisy" if style else "")
    )
    size = len(care_plan_bytes("CP-1001"))
    console.print(f"Validating the CarePlan ({size:,} bytes as compact JSON) in a loop ...")
    validation = measure_validation(args.validation_seconds)
    backends: list[BackendFigures] = []
    profiles: list[str] = []
    if args.floor:
        workdir = scratch_dir()
        try:
            backends.append(Runner(args, generator, console, workdir).floor())
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
    for name in args.backends:
        if name == "postgresql":
            problem = pg_problem()
            if problem is not None:
                note = f"skipped: PostgreSQL at {PG_ROOT_URL} does not answer ({problem})"
                console.print(f"[yellow]{note}")
                backends.append(BackendFigures(name, note=note))
                continue
        for acting in args.acting[:1] if name == SYNCHRONOUS_NORMAL else args.acting:
            workdir = scratch_dir()
            try:
                runner = Runner(args, generator, console, workdir)
                engine = "sqlite" if name == SYNCHRONOUS_NORMAL else name
                with fresh_database(engine, workdir) as url:
                    backends.append(runner.backend(name, url, acting))
                profiles += runner.profiles
            finally:
                shutil.rmtree(workdir, ignore_errors=True)
    title = (
        f"casebridge CarePlan benchmark — load generator: {generator.label}; "
        f"{args.connections} connections, {args.workers} server workers, "
        f"{args.duration:g} s per phase after {args.warmup:g} s warm-up, 127.0.0.1"
    )
    console.print()
    console.print(build_table(title, backends, validation))
    console.print(
        "Rates are completed requests/s; p50/p99/max are client-side latencies. Server CPU/req "
        "is the CPU time of the server's processes (not PostgreSQL's) per request; Gen CPU is "
        "the load generator's CPU time as a share of one core; Host CPU is how busy all "
        f"{os.cpu_count()} cores of this machine were (server, generator and database share "
        f"them; {background:.0%} busy before the run). Targets bind on SQLite; PostgreSQL is "
        "shown against the same bars for information."
    )
    for line in _agency_ratios(backends) + _floor_ratios(backends) + _durability(backends):
        console.print(line)
    for backend in backends:
        if backend.note:
            console.print(f"[yellow]{backend.label}: {backend.note}")
    for report in profiles:
        console.print()
        console.print(report)
    missed = misses(backends, validation)
    failed = any(b.note and b.note.startswith("failed") for b in backends)
    if failed:
        return 1
    return 2 if args.check and missed else 0


def _durability(backends: list[BackendFigures]) -> list[str]:
    """SQLite synchronous=FULL (the default) against NORMAL, as the same caller."""
    normal = next((b for b in backends if b.name == SYNCHRONOUS_NORMAL and b.phases), None)
    if normal is None:
        return []
    full = next(
        (b for b in backends if b.name == "sqlite" and b.acting == normal.acting and b.phases),
        None,
    )
    if full is None:
        return []
    parts = [
        f"{phase} {full.phases[phase].result.rate / normal.phases[phase].result.rate:.2f}"
        for phase in PHASES
        if phase in full.phases and phase in normal.phases and normal.phases[phase].result.rate > 0
    ]
    return [f"sqlite: synchronous FULL (default) ÷ NORMAL: {', '.join(parts)}"] if parts else []


def _agency_ratios(backends: list[BackendFigures]) -> list[str]:
    """Per backend measured both ways: the agency's rate over the operator's, per phase."""
    lines = []
    by_name: dict[str, dict[str, BackendFigures]] = {}
    for backend in backends:
        by_name.setdefault(backend.name, {})[backend.acting] = backend
    for name, runs in by_name.items():
        operator = runs.get("operator")
        agencies = [b for a, b in runs.items() if a != "operator"]
        if operator is None or not agencies:
            continue
        for agency in agencies:
            rates = {
                phase: (agency.phases[phase].result.rate, operator.phases[phase].result.rate)
                for phase in PHASES
                if phase in agency.phases and phase in operator.phases
            }
            parts = [f"{phase} {a / o:.2f}" for phase, (a, o) in rates.items() if o > 0]
            if parts:
                lines.append(f"{name}: as {agency.acting} ÷ as the operator: {', '.join(parts)}")
    return lines


def _floor_ratios(backends: list[BackendFigures]) -> list[str]:
    """Each server run's rates over the floor's, beside the targets: create and read over
    the floor's create and read, update over the floor's create."""
    floor = next((b for b in backends if b.name == FLOOR and b.phases), None)
    if floor is None:
        return []
    lines = []
    for backend in backends:
        if backend.name == FLOOR:
            continue
        parts = []
        for phase, target in FLOOR_TARGETS.items():
            against = floor.phases.get("create" if phase == "update" else phase)
            mine = backend.phases.get(phase)
            if against is None or mine is None or against.result.rate <= 0:
                continue
            ratio = mine.result.rate / against.result.rate
            mark = "ok" if ratio >= target else "below"
            of = "floor create" if phase == "update" else "floor"
            parts.append(f"{phase} {ratio:.2f} of {of} (target ≥{target}: {mark})")
        if parts:
            lines.append(f"{backend.label} ÷ floor: {'; '.join(parts)}")
    return lines


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run the benchmark, print the report; cleans up even on Ctrl-C."""
    args = _parse(argv)
    console = Console()
    if not console.is_terminal:  # piped or captured: wide enough for the whole table
        console = Console(width=200)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        return _run(args, console)
    except KeyboardInterrupt:
        console.print("[yellow]interrupted: the servers, temporary files and schemas were removed")
        return 130
