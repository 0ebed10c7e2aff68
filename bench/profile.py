"""Optional py-spy sampling of one server worker during timed phases (--profile)."""

from __future__ import annotations

import re
import secrets
import shutil
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

_LINE = re.compile(r":\d+\)$")
_TOP = 15


@dataclass
class Sampler:
    """A running `py-spy record` and where it writes."""

    proc: subprocess.Popen[bytes] | None
    output: Path
    pid: int
    problem: str | None = None


def _py_spy() -> str | None:
    beside = Path(sys.executable).with_name("py-spy")
    return str(beside) if beside.exists() else shutil.which("py-spy")


def start(worker_pids: list[int], duration_s: float, workdir: Path) -> Sampler:
    """Sample the first worker for duration_s seconds at 100 Hz (py-spy pauses it briefly)."""
    output = workdir / f"profile-{secrets.token_hex(4)}.txt"
    exe = _py_spy()
    if exe is None or not worker_pids:
        problem = (
            "py-spy is not installed (`.venv/bin/pip install py-spy`)"
            if exe is None
            else "no worker process found"
        )
        return Sampler(None, output, 0, problem)
    pid = worker_pids[0]
    command = [
        exe, "record", "--pid", str(pid), "--duration", str(max(1, round(duration_s))),
        "--rate", "100", "--format", "raw", "--output", str(output),
    ]  # fmt: skip
    proc = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL
    )
    return Sampler(proc, output, pid)


def _short(frame: str) -> str:
    frame = _LINE.sub(")", frame.strip())
    for marker in ("site-packages/", "/work/main/", "lib/python3"):
        if marker in frame:
            name, _, path = frame.partition(" (")
            return f"{name} ({path.split(marker, 1)[1]}"
    return frame


# Leaf frames where a sampled thread is waiting, not working (py-spy's own idle detection
# does not see through these in this setting): the thread pool's queue, locks, pipes.
_IDLE = {
    "Condition.wait",
    "Queue.get",
    "Event.wait",
    "Thread.join",
    "Connection._recv",
    "Connection.poll",
    "sleep",
    "select",
}
# The event loop's Python frame when the sample is inside uvloop's C code (polling and I/O).
_LOOP = "Runner.run"


def _name(frame: str) -> str:
    return frame.partition(" (")[0]


def summarise(raw: str, top: int = _TOP) -> str:
    """Where one worker's sampled threads were, from py-spy's collapsed stacks.

    Idle waits are counted apart; the rest is ranked by self time (the sampled leaf frame) and,
    for the project's own code (app/), by inclusive time.
    """
    own: Counter[str] = Counter()
    project: Counter[str] = Counter()
    total = idle = loop = 0
    for line in raw.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_short(f) for f in stack.split(";") if f.strip()]
        if not frames:
            continue
        total += count
        leaf = _name(frames[-1])
        if leaf in _IDLE:
            idle += count
            continue
        if leaf == _LOOP:
            loop += count
            continue
        own[frames[-1]] += count
        for frame in set(frames):
            if "(app/" in frame:
                project[frame] += count
    if total == 0:
        return "no samples"
    working = total - idle - loop
    lines = [
        f"{total} thread samples: {idle / total:.0%} idle waits (thread-pool queue, locks), "
        f"{loop / total:.0%} in the event loop's C code (uvloop polling and socket I/O), "
        f"{working / total:.0%} in Python frames below.",
        "top frames by self time (share of all samples):",
    ]
    lines += [f"  {n / total:6.1%}  {f}" for f, n in own.most_common(top)]
    lines.append("project code (app/) by inclusive time (share of all samples):")
    lines += [f"  {n / total:6.1%}  {f}" for f, n in project.most_common(top)]
    return "\n".join(lines)


def finish(sampler: Sampler, label: str) -> str:
    """Wait for py-spy and return a printable summary (or why there is none)."""
    header = f"py-spy profile of one server worker (pid {sampler.pid}) during {label}"
    if sampler.proc is None:
        return f"{header}: {sampler.problem}"
    try:
        _, err = sampler.proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        sampler.proc.kill()
        sampler.proc.communicate()
        return f"{header}: py-spy did not finish"
    if sampler.proc.returncode != 0 or not sampler.output.exists():
        return f"{header}: py-spy failed: {err.decode(errors='replace')[-500:]}"
    return f"{header}\n{summarise(sampler.output.read_text())}"
