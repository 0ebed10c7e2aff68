"""Running the casebridge command line against a test database, as a user would."""

from __future__ import annotations

import os
import subprocess
import sys


def run_cli(args: list[str], env_extra: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`python -m app.cli ARGS` with extra environment; never raises on a failing command."""
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **env_extra},
        timeout=60,
        check=False,
    )
