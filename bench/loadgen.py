"""Load generators: wrk with a generated Lua script, or the Python asyncio + httpx fallback.

Both run in their own process, are told one Phase, and report a LoadResult.
"""

from __future__ import annotations

import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

from rich.console import Console

_LUA = Path(__file__).with_name("lua") / "phase.lua"


@dataclass(frozen=True)
class Phase:
    """One kind of request to repeat: method, path under the server root, ids and body."""

    name: str
    method: str
    base_path: str
    ids: list[str] = field(default_factory=list)
    parts: list[str] = field(default_factory=list)
    slots: list[str] = field(default_factory=list)
    offset: int = 0
    tag: str = "m"


@dataclass(frozen=True)
class LoadResult:
    """What one timed run of a generator measured (latencies in microseconds)."""

    requests: int
    duration_s: float
    p50_us: float
    p99_us: float
    max_us: float
    errors: int
    generator_cpu_s: float = 0.0

    @property
    def rate(self) -> float:
        """Completed requests per second."""
        return self.requests / self.duration_s if self.duration_s > 0 else 0.0


@dataclass(frozen=True)
class Generator:
    """A load generator: its kind ("wrk" or "python") and a label for the report."""

    kind: str
    label: str


def _wrk_version(path: str) -> str:
    proc = subprocess.run([path, "-v"], capture_output=True, text=True, check=False)
    match = re.search(r"wrk\s+(\S+)", proc.stdout + proc.stderr)
    return f"wrk {match.group(1)}" if match else "wrk"


def _apt_install_wrk(console: Console) -> bool:
    """Try `apt-get install -y wrk` (after `apt-get update` if needed); True when it worked."""
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        console.print("[yellow]wrk is missing and apt-get is not usable here (needs root).")
        return False
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", "--no-install-recommends", "wrk"]
    console.print(f"wrk not found: running `{' '.join(install)}`")
    proc = subprocess.run(install, capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:
        console.print("  not in the package lists yet: running `apt-get update -q` first")
        subprocess.run(["apt-get", "update", "-q"], capture_output=True, env=env, check=False)
        proc = subprocess.run(install, capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:]
        console.print(f"[yellow]  apt-get install wrk failed: {' '.join(tail)}")
        return False
    console.print(f"  installed {shutil.which('wrk')}")
    return True


def choose_generator(wanted: str, console: Console, *, install: bool) -> Generator:
    """wrk when wanted and available (installing it with apt-get if allowed), else Python."""
    if wanted in ("auto", "wrk"):
        path = shutil.which("wrk")
        if path is None and install:
            _apt_install_wrk(console)
            path = shutil.which("wrk")
        if path is not None:
            return Generator("wrk", _wrk_version(path))
        if wanted == "wrk":
            raise SystemExit("wrk was asked for (--generator wrk) but is not available")
        console.print(
            "[yellow]wrk unavailable: falling back to the Python asyncio + httpx generator"
        )
    return Generator("python", "Python asyncio + httpx")


def _lua_string(value: str) -> str:
    level = 1
    while f"]{'=' * level}]" in value:
        level += 1
    eq = "=" * level
    return f"[{eq}[{value}]{eq}]"


def _lua_list(values: list[str]) -> str:
    return "{" + ",".join(_lua_string(v) for v in values) + "}"


def wrk_script(phase: Phase, threads: int) -> str:
    """The complete Lua script for one phase: the data table, then bench/lua/phase.lua."""
    data = (
        "bench = {\n"
        f"  method = {_lua_string(phase.method)},\n"
        f"  base = {_lua_string(phase.base_path)},\n"
        f"  ids = {_lua_list(phase.ids)},\n"
        f"  parts = {_lua_list(phase.parts)},\n"
        f"  slots = {_lua_list(phase.slots)},\n"
        f"  nthreads = {threads},\n"
        f"  offset = {phase.offset},\n"
        f"  tag = {_lua_string(phase.tag)},\n"
        "}\n"
    )
    return data + _LUA.read_text()


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _parse_summary(output: str) -> dict[str, float]:
    for line in output.splitlines():
        if line.startswith("BENCH_JSON "):
            parsed: dict[str, float] = json.loads(line.removeprefix("BENCH_JSON "))
            return parsed
    raise RuntimeError(f"the load generator printed no summary:\n{output[-2000:]}")


def run_phase(
    generator: Generator,
    phase: Phase,
    *,
    root_url: str,
    duration_s: float,
    connections: int,
    threads: int,
    workdir: Path,
    rate: float | None = None,
) -> LoadResult:
    """Run one phase for duration_s seconds in a separate process and return what it measured.

    rate: an open loop at this many requests per second (the Python generator only; wrk is
    a closed loop), over at most `connections` connections."""
    if not root_url.startswith("http://127.0.0.1:"):
        raise ValueError("the benchmark only sends traffic to 127.0.0.1")
    if rate is not None and generator.kind != "python":
        raise ValueError("an open loop (rate) needs the Python generator")
    threads = max(1, min(threads, connections))
    if generator.kind == "wrk":
        script = workdir / f"{phase.name}-{phase.tag}.lua"
        script.write_text(wrk_script(phase, threads))
        command = [
            "wrk",
            f"-t{threads}",
            f"-c{connections}",
            f"-d{max(1, round(duration_s))}s",
            "--timeout",
            "10s",
            "-s",
            str(script),
            root_url,
        ]
    else:
        spec = workdir / f"{phase.name}-{phase.tag}.json"
        spec.write_text(json.dumps(asdict(phase)))
        command = [
            sys.executable,
            "-m",
            "bench.pyload",
            "--url",
            root_url,
            "--spec",
            str(spec),
            "--duration",
            str(duration_s),
            "--connections",
            str(connections),
            *(["--rate", str(rate)] if rate is not None else []),
        ]
    cpu_before = _children_cpu()
    proc = subprocess.run(
        command,
        capture_output=True,
        text=True,
        check=False,
        timeout=duration_s + 60,
        cwd=Path(__file__).resolve().parent.parent,
    )
    cpu = _children_cpu() - cpu_before
    if proc.returncode != 0:
        raise RuntimeError(f"{command[0]} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    summary = _parse_summary(proc.stdout)
    errors = sum(int(v) for k, v in summary.items() if k.startswith("errors_"))
    return LoadResult(
        requests=int(summary["requests"]),
        duration_s=summary["duration_us"] / 1e6,
        p50_us=summary["p50_us"],
        p99_us=summary["p99_us"],
        max_us=summary["max_us"],
        errors=errors,
        generator_cpu_s=cpu,
    )


def scratch_dir() -> Path:
    """A private temporary directory (the caller removes it)."""
    return Path(tempfile.mkdtemp(prefix="casebridge-bench-"))
