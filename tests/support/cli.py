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
