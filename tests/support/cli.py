"""Running the casebridge command line against a test database, as a user would."""

from __future__ import annotations

import os
import subprocess
import sys


def run_cli(
    args: list[str], env_extra: dict[str, str], *, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    """`python -m app.cli ARGS` with extra environment, reading stdin (nothing by default);
    never raises on a failing command."""
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env={**os.environ, **env_extra},
        timeout=60,
        check=False,
    )


def start_worker(env_extra: dict[str, str]) -> subprocess.Popen[bytes]:
    """`casebridge worker` with extra environment; its stderr kept for the test to show."""
    return subprocess.Popen(
        [sys.executable, "-m", "app.cli", "worker"],
        env={**os.environ, **env_extra},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
