"""The SQLite WAL stays bounded under sustained writes with readers alongside (issue 17).

PASSIVE checkpoints alone never let the WAL start over while writers and readers keep
coming: the file grew by ~330 KB per create and never shrank. Here the bound is 1 MiB and
the checkpointer ticks every 50 ms; writers and readers run for a few seconds, and the WAL
is sampled all along. Without the bound it passes tens of megabytes within seconds.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from app.main import create_app
from tests import factories
from tests.conftest import migrated_database
from tests.support.clock import fixed_clock
from tests.support.server import LiveServer, free_port, start_server

BOUND = 1024 * 1024


@pytest.fixture(scope="module")
def sqlite_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveServer, Path]]:
    with migrated_database("sqlite", tmp_path_factory, "wal") as database:
        port = free_port()
        settings = database.settings(
            base_url=f"http://127.0.0.1:{port}/fhir",
            sqlite_wal_max_mb=1,
            sqlite_checkpoint_interval_s=0.05,
        )
        server = start_server(create_app(settings, clock=fixed_clock()), port)
        yield server, Path(database.url.removeprefix("sqlite:///"))
        server.stop()


def test_the_wal_stays_near_its_bound_under_writes_and_reads(
    sqlite_server: tuple[LiveServer, Path],
) -> None:
    server, path = sqlite_server
    wal = Path(f"{path}-wal")
    stop = threading.Event()
    written: list[str] = []
    errors: list[str] = []

    def write() -> None:
        with httpx.Client(base_url=server.fhir, timeout=30) as http:
            while not stop.is_set():
                response = http.post(
                    "/Observation",
                    json=factories.minimal("Observation"),
                    headers=factories.FHIR_JSON,
                )
                if response.status_code != 201:
                    errors.append(response.text)
                    return
                written.append(response.json()["id"])

    def read() -> None:
        with httpx.Client(base_url=server.fhir, timeout=30) as http:
            while not stop.is_set():
                if written:
                    http.get(f"/Observation/{written[-1]}")
                http.get("/Observation?_count=5")

    threads = [threading.Thread(target=write) for _ in range(3)]
    threads += [threading.Thread(target=read) for _ in range(3)]
    for thread in threads:
        thread.start()
    peak = 0
    deadline = time.monotonic() + 4
    while time.monotonic() < deadline and not errors:
        peak = max(peak, wal.stat().st_size if wal.exists() else 0)
        time.sleep(0.01)
    stop.set()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
    # Enough was written for an unbounded WAL to pass the bound many times over.
    assert len(written) >= 100
    # (2.8 MB in a run of 424 creates; 14 MB and growing without the bound.)
    assert peak < 8 * BOUND, f"the WAL reached {peak:,} bytes"
    # Once the writes stop, the next ticks bring it under the bound.
    settle = time.monotonic() + 5
    while (wal.stat().st_size if wal.exists() else 0) > BOUND and time.monotonic() < settle:
        time.sleep(0.05)
    assert (wal.stat().st_size if wal.exists() else 0) <= BOUND
