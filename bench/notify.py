"""`python -m bench.notify`: notification latency, commit to receiver, with the receiver up.

For each backend: a fresh database, the real server (`casebridge serve`, uvicorn, with its
in-process delivery worker) as a subprocess, a rest-hook receiver (http.server on
127.0.0.1 in this process) and one topic Subscription (referral Task changes, owner
filter, id-only payload). Tasks are then created one at a time, --pause apart, over one
keep-alive connection; each must produce one notification.

Latency of a write = the time its notification arrives at the receiver minus the time the
client sent the write. The commit happens between the two, so this is an upper bound of
commit-to-receiver; "after response" (arrival minus the time the 201 came back) is a
lower bound. The table gives p50/p99/max of both; the target is p99 < 200 ms on loopback.
Every event must arrive exactly once and in order (eventNumber 1..N).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
from rich import box
from rich.console import Console
from rich.table import Table

from bench.loadgen import scratch_dir
from bench.server import Server, failure_noted, free_port, fresh_database, pg_problem

BACKENDS = ("sqlite", "postgresql")
TARGET_P99_MS = 200.0
_HEADERS = {"Content-Type": "application/fhir+json"}
_TOPIC = "http://casebridge.org/fhir/SubscriptionTopic/referral-task"
_BACKPORT = "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/"


@dataclass
class BackendRun:
    """Latencies on one backend (seconds), or why there are none."""

    name: str
    upper: list[float] = field(default_factory=list)
    lower: list[float] = field(default_factory=list)
    in_order: bool = False
    note: str | None = None


class _Receiver:
    """Records (arrival time, eventNumber, focus reference) of each event notification."""

    def __init__(self) -> None:
        self.port = free_port()
        self.arrivals: list[tuple[float, int, str]] = []
        self.handshakes = 0
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                at = time.time()
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()
                status = json.loads(body)["entry"][0]["resource"]
                with receiver._lock:
                    if status["type"] == "handshake":
                        receiver.handshakes += 1
                    for event in status.get("notificationEvent", []):
                        receiver.arrivals.append(
                            (at, int(event["eventNumber"]), event["focus"]["reference"])
                        )

            def log_message(self, *_args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def _subscription(endpoint: str) -> dict[str, Any]:
    return {
        "resourceType": "Subscription",
        "status": "requested",
        "reason": "notification latency benchmark",
        "criteria": _TOPIC,
        "_criteria": {
            "extension": [
                {
                    "url": _BACKPORT + "backport-filter-criteria",
                    "valueString": "owner=Organization/b",
                }
            ]
        },
        "channel": {
            "type": "rest-hook",
            "endpoint": endpoint,
            "payload": "application/fhir+json",
            "_payload": {
                "extension": [
                    {"url": _BACKPORT + "backport-payload-content", "valueCode": "id-only"}
                ]
            },
        },
    }


def _task(n: int) -> dict[str, Any]:
    return {
        "resourceType": "Task",
        "status": "requested",
        "intent": "order",
        "code": {"text": "fulfill"},
        "for": {"reference": "Patient/client-1"},
        "requester": {"reference": "Organization/a"},
        "owner": {"reference": "Organization/b"},
        "note": [{"text": f"benchmark referral {n}"}],
    }


def _wait(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.01)


def _measure(server: Server, args: argparse.Namespace, run: BackendRun, console: Console) -> None:
    receiver = _Receiver()
    try:
        with httpx.Client(base_url=f"{server.root_url}/fhir", timeout=30) as client:
            created = client.post(
                "/Subscription", json=_subscription(receiver.url), headers=_HEADERS
            )
            created.raise_for_status()
            sub = created.json()["id"]
            _wait(
                lambda: client.get(f"/Subscription/{sub}").json()["status"] == "active",
                15,
                "the subscription to become active",
            )
            total = args.warmup + args.count
            sent: dict[str, tuple[float, float]] = {}
            for n in range(total):
                started = time.time()
                response = client.post("/Task", json=_task(n), headers=_HEADERS)
                finished = time.time()
                response.raise_for_status()
                sent[response.json()["id"]] = (started, finished)
                time.sleep(args.pause)
            _wait(lambda: len(receiver.arrivals) >= total, 60, "every notification")
            time.sleep(0.2)
    finally:
        receiver.stop()
    numbers = [a[1] for a in receiver.arrivals]
    run.in_order = numbers == list(range(1, total + 1))
    if not run.in_order:
        run.note = f"events out of order or repeated: {numbers[:20]}..."
    for at, number, focus in receiver.arrivals:
        if number <= args.warmup:
            continue
        started, finished = sent[focus.rsplit("/", 1)[1]]
        run.upper.append(at - started)
        run.lower.append(at - finished)
    console.print(f"  {run.name}: {len(run.upper)} notifications timed")


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def _backend(name: str, args: argparse.Namespace, console: Console) -> BackendRun:
    run = BackendRun(name)
    if name == "postgresql" and (problem := pg_problem()) is not None:
        run.note = f"skipped: PostgreSQL does not answer ({problem})"
        console.print(f"[yellow]{run.note}")
        return run
    workdir = scratch_dir()
    try:
        with failure_noted(run, name, console), fresh_database(name, workdir) as url:
            server = Server(url, 1, workdir)
            try:
                console.print(f"[bold]{name}[/]: starting the server")
                server.start()
                _measure(server, args, run, console)
            finally:
                server.stop()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return run


def build_table(runs: list[BackendRun]) -> Table:
    """p50/p99/max in milliseconds per backend."""
    table = Table(
        title=f"Notification latency, commit to receiver (target p99 < {TARGET_P99_MS:.0f} ms)",
        box=box.SIMPLE_HEAVY,
        title_justify="left",
    )
    for column in (
        "backend",
        "events",
        "p50 ms",
        "p99 ms",
        "max ms",
        "p50 after response",
        "p99 after response",
        "in order, once",
        "result",
    ):
        table.add_column(column, justify="left" if column == "backend" else "right")
    for run in runs:
        if not run.upper:
            table.add_row(run.name, *[""] * 7, f"[yellow]{(run.note or 'no data')[:60]}")
            continue
        p99 = _percentile(run.upper, 0.99) * 1000
        ok = p99 < TARGET_P99_MS and run.in_order
        table.add_row(
            run.name,
            str(len(run.upper)),
            f"{statistics.median(run.upper) * 1000:.1f}",
            f"{p99:.1f}",
            f"{max(run.upper) * 1000:.1f}",
            f"{statistics.median(run.lower) * 1000:.1f}",
            f"{_percentile(run.lower, 0.99) * 1000:.1f}",
            "yes" if run.in_order else "NO",
            "[green]met" if ok else "[red]missed",
        )
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.notify", description=__doc__)
    parser.add_argument("--count", type=int, default=300, help="timed notifications")
    parser.add_argument("--warmup", type=int, default=20, help="untimed notifications first")
    parser.add_argument("--pause", type=float, default=0.01, help="seconds between writes")
    parser.add_argument("--backends", nargs="+", choices=BACKENDS, default=list(BACKENDS))
    args = parser.parse_args(argv)
    console = Console() if Console().is_terminal else Console(width=200)
    runs = [_backend(name, args, console) for name in args.backends]
    console.print()
    console.print(build_table(runs))
    failed = [r for r in runs if not r.upper or not r.in_order]
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
