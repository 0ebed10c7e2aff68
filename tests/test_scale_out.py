"""The scale-out deployment without containers (issue 21): two API processes and one
delivery worker on one PostgreSQL, under write load, with one API process killed mid-run.
No acknowledged write is lost, every stored write is notified at least once with no gap in
the event numbers, and the surviving process goes on serving."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import Backend, migrated_database
from tests.support.receiver import Receiver
from tests.support.server import free_port
from tests.test_subscriptions import AGENCY, subscribe, task, topic_subscription

FHIR_JSON = {"Content-Type": "application/fhir+json", "X-Casebridge-Agency": AGENCY}
# Behind a reverse proxy every process answers for the same base.
BASE = "https://casebridge.example/fhir"


def _env(url: str) -> dict[str, str]:
    return {
        **os.environ,
        "CASEBRIDGE_DATABASE_URL": url,
        "CASEBRIDGE_BASE_URL": BASE,
        "CASEBRIDGE_AUTH": "off",
        "CASEBRIDGE_INSTALL_CONFORMANCE": "false",
        "CASEBRIDGE_NOTIFY_WORKER": "false",
        "CASEBRIDGE_NOTIFY_ALLOW_PRIVATE_ENDPOINTS": "true",
        "CASEBRIDGE_REQUEST_LOG": "false",
    }


class Process:
    """One casebridge process (serve or worker), its output kept in a file."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        self.log = log
        with log.open("wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "app.cli", *args],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


def _api(url: str, tmp_path: Path, name: str) -> tuple[Process, str]:
    port = free_port()
    process = Process(
        ["serve", "--port", str(port), "--log-level", "warning"], _env(url), tmp_path / name
    )
    root = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        assert process.proc.poll() is None, process.log.read_text()
        try:
            if httpx.get(f"{root}/readyz", timeout=2).status_code == 200:
                return process, root
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, "the API process did not start"
        time.sleep(0.1)


@pytest.fixture
def database(backend: Backend, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if backend.name != "postgresql":
        pytest.skip("the scale-out deployment runs on PostgreSQL")
    with migrated_database("postgresql", tmp_path_factory, "scale") as db:
        yield db.url


def _focus_ids(receiver: Receiver) -> list[str]:
    found = []
    for received in receiver.of_kind("event-notification"):
        status = received.bundle["entry"][0]["resource"]
        for event in status.get("notificationEvent", []):
            found.append(event["focus"]["reference"].rsplit("/", 1)[1])
    return found


def test_two_api_processes_and_a_worker_survive_losing_one(database: str, tmp_path: Path) -> None:
    receiver = Receiver().start()
    worker = Process(["worker"], _env(database), tmp_path / "worker.log")
    first, first_root = _api(database, tmp_path, "api-1.log")
    second, second_root = _api(database, tmp_path, "api-2.log")
    acknowledged: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()
    try:
        with httpx.Client(base_url=f"{second_root}/fhir", timeout=30) as http:
            subscribe(http, topic_subscription(receiver.url))

        def write(roots: list[str]) -> None:
            clients = {r: httpx.Client(base_url=f"{r}/fhir", timeout=10) for r in roots}
            try:
                for root in itertools.cycle(roots):
                    if stop.is_set():
                        return
                    try:
                        response = clients[root].post(
                            "/Task", json=task("Organization/b"), headers=FHIR_JSON
                        )
                    except httpx.HTTPError:
                        continue  # that process is gone: not acknowledged
                    if response.status_code == 201:
                        with lock:
                            acknowledged.append(response.json()["id"])
            finally:
                for client in clients.values():
                    client.close()

        writers = [
            threading.Thread(target=write, args=([first_root, second_root],), daemon=True)
            for _ in range(3)
        ]
        for writer in writers:
            writer.start()
        while len(acknowledged) < 60:
            time.sleep(0.02)
        # One API process dies mid-run, with requests in flight.
        os.killpg(first.proc.pid, signal.SIGKILL)
        first.proc.wait(timeout=10)
        killed_at = len(acknowledged)
        while len(acknowledged) < killed_at + 60:
            time.sleep(0.02)
        stop.set()
        for writer in writers:
            writer.join(timeout=30)

        with httpx.Client(base_url=f"{second_root}/fhir", timeout=30) as http:
            # The survivor serves, and every acknowledged write is there.
            assert httpx.get(f"{second_root}/readyz", timeout=10).status_code == 200
            for rid in acknowledged:
                assert http.get(f"/Task/{rid}").status_code == 200, rid
            listed = http.get(
                "/Task", params={"owner": "Organization/b", "_count": "1000", "_elements": "id"}
            ).json()
            stored = {entry["resource"]["id"] for entry in listed.get("entry", [])}
        assert set(acknowledged) <= stored
        # Every stored Task notified at least once, numbered 1..N without a gap.
        receiver.wait_for(lambda r: set(_focus_ids(r)) >= stored, timeout=60)
        assert set(_focus_ids(receiver)) == stored
        assert set(receiver.events()) == set(range(1, len(stored) + 1))
        assert worker.proc.poll() is None, worker.log.read_text()
    finally:
        stop.set()
        for process in (worker, second, first):
            process.stop()
        receiver.stop()
    assert worker.proc.returncode == 0, worker.log.read_text()
