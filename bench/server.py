"""The server under test: `casebridge serve` as a subprocess, and its PostgreSQL schema."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol
from urllib.parse import quote

import httpx
import psycopg
from rich.console import Console

PG_ROOT_URL = "postgresql://postgres@127.0.0.1:5432/test"
_CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def pg_problem(url: str = PG_ROOT_URL) -> str | None:
    """None when PostgreSQL answers at url, else why not."""
    try:
        with psycopg.connect(url, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        return str(exc).strip() or type(exc).__name__
    return None


@contextlib.contextmanager
def pg_schema(root_url: str = PG_ROOT_URL, *, keep: bool = False) -> Iterator[str]:
    """A fresh schema bench_<random>; yields a database URL whose search_path is that schema.
    It is dropped afterwards unless keep."""
    name = f"bench_{os.getpid()}_{secrets.token_hex(4)}"
    with psycopg.connect(root_url, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{name}"')
    try:
        yield f"{root_url}?options={quote(f'-csearch_path={name}')}"
    finally:
        if not keep:
            with psycopg.connect(root_url, autocommit=True, connect_timeout=10) as conn:
                conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


@contextlib.contextmanager
def fresh_database(
    name: str, workdir: Path, filename: str = "bench.db", *, keep: bool = False
) -> Iterator[str]:
    """A fresh database for one backend run: a SQLite file in workdir, or a PostgreSQL
    schema dropped afterwards unless keep."""
    if name == "sqlite":
        yield f"sqlite:///{workdir / filename}"
    else:
        with pg_schema(keep=keep) as url:
            yield url


class _Noted(Protocol):
    note: str | None


@contextlib.contextmanager
def failure_noted(run: _Noted, name: str, console: Console) -> Iterator[None]:
    """Run one backend's measurements; a failure is written into its table row and the
    other backends go on."""
    try:
        yield
    except Exception as exc:
        run.note = f"failed: {type(exc).__name__}: {str(exc)[:400]}"
        console.print(f"[red]{name} failed:[/] {exc}")


def _children(pid: int) -> list[int]:
    found: list[int] = []
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            text = (task / "children").read_text()
            found.extend(int(p) for p in text.split())
    return found


def process_tree(pid: int) -> list[int]:
    """pid and all its descendants (Linux /proc; just [pid] elsewhere)."""
    tree = [pid]
    index = 0
    while index < len(tree):
        tree.extend(_children(tree[index]))
        index += 1
    return tree


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time used so far by the live processes among pids."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
    return total / _CLK_TCK


def host_cpu_times() -> tuple[int, int]:
    """(busy, total) jiffies of all cores from /proc/stat; (0, 0) where there is none."""
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return 0, 0
    total = sum(fields[:8])  # user nice system idle iowait irq softirq steal
    return total - fields[3] - fields[4], total


def host_busy_share(before: tuple[int, int], after: tuple[int, int]) -> float:
    """How busy the machine's cores were between two host_cpu_times() readings (0..1)."""
    total = after[1] - before[1]
    return (after[0] - before[0]) / total if total > 0 else 0.0


def host_steal_times() -> tuple[int, int]:
    """(steal, total) jiffies of all cores from /proc/stat: time the hypervisor ran
    something else while this machine's cores had work. On a shared 2-core host it comes
    as whole-core pauses of about 100 ms once both cores are busy, which a p99 shows."""
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return 0, 0
    return (fields[7] if len(fields) > 7 else 0), sum(fields[:8])


class Server:
    """`casebridge serve --migrate` in its own process group, stopped as a group."""

    def __init__(
        self,
        database_url: str,
        workers: int,
        workdir: Path,
        env: dict[str, str] | None = None,
    ) -> None:
        self.env = env or {}
        self.database_url = database_url
        self.workers = workers
        self.workdir = workdir
        self.port = free_port()
        self.log_path = workdir / f"server-{self.port}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def root_url(self) -> str:
        """http://127.0.0.1:PORT"""
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        """The command line that serves the app."""
        return [
            _casebridge_command(),
            "serve",
            "--migrate",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--workers",
            str(self.workers),
            "--log-level",
            "warning",
        ]

    def start(self, timeout_s: float = 90.0) -> None:
        """Start the server and wait until /readyz answers 200."""
        env = {
            **os.environ,
            "CASEBRIDGE_DATABASE_URL": self.database_url,
            "CASEBRIDGE_BASE_URL": f"{self.root_url}/fhir",
            "CASEBRIDGE_DATA_DIR": str(self.workdir),
            "CASEBRIDGE_ACCESS_LOG": "0",
            "CASEBRIDGE_AUTH": "off",
            **self.env,
        }
        command = self.command()
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                command,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout_s
        with httpx.Client(base_url=self.root_url, timeout=2.0) as client:
            while True:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"the server exited ({self.proc.returncode}):\n{self.log()}")
                with contextlib.suppress(httpx.HTTPError):
                    if client.get("/readyz").status_code == 200 and self._workers_up():
                        return
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"the server was not ready in {timeout_s:.0f} s:\n{self.log()}"
                    )
                time.sleep(0.2)

    def _workers_up(self) -> bool:
        return self.workers <= 1 or len(self.worker_pids()) >= self.workers

    def worker_pids(self) -> list[int]:
        """The uvicorn worker processes (children of the supervisor running the app)."""
        if self.proc is None:
            return []
        return [pid for pid in _children(self.proc.pid) if _is_python(pid)]

    def cpu_seconds(self) -> float:
        """CPU time used so far by the server's processes (not PostgreSQL's backends)."""
        return cpu_seconds(process_tree(self.proc.pid)) if self.proc is not None else 0.0

    def log(self, lines: int = 40) -> str:
        """The last lines of the server's output."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        """SIGTERM the process group, then SIGKILL whatever is left after 10 s."""
        if self.proc is None:
            return
        pgid = self.proc.pid
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=10)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=5)
        self.proc = None


def _is_python(pid: int) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"multiprocessing.resource_tracker" not in cmdline


class FloorServer(Server):
    """The floor app (bench/floor.py) under uvicorn with casebridge's serving options (uvloop,
    httptools, the same number of workers), on a SQLite file of its own."""

    def __init__(self, workers: int, workdir: Path) -> None:
        database = workdir / "floor.db"
        # The checkout's bench package, wherever the benchmark was started from.
        root = str(Path(__file__).resolve().parents[1])
        path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH", "")) if p)
        env = {"CASEBRIDGE_FLOOR_DB": str(database), "PYTHONPATH": path}
        super().__init__(f"sqlite:///{database}", workers, workdir, env=env)

    def command(self) -> list[str]:
        """uvicorn serving bench.floor:app."""
        return [
            sys.executable,
            "-m",
            "uvicorn",
            "bench.floor:app",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--workers",
            str(self.workers),
            "--loop",
            "uvloop",
            "--http",
            "httptools",
            "--no-access-log",
            "--log-level",
            "warning",
        ]


def _casebridge_command() -> str:
    """The casebridge console script of this interpreter's venv, else the one on PATH."""
    beside = Path(sys.executable).with_name("casebridge")
    if beside.exists():
        return str(beside)
    found = shutil.which("casebridge")
    if found is None:
        raise RuntimeError("the casebridge command is not installed (run `make install`)")
    return found
