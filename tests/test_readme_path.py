"""README's case worker's path, run as written (issue 19): every curl command of the block,
in order, against the real server on both databases; each `#    -> {...}` line after a
command is checked against its answer, and `<name>` placeholders take the values earlier
answers gave. A README step that stops working fails here.

The block is read, not copied: the shell variables (`H=...`), line continuations, `jq`
assignments piped into a PUT (`curl URL | jq '.a = 1 | .b = "x"' | curl -X PUT URL -d @-`)
and `> file` redirections are interpreted; nothing else of the shell is needed.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import Backend
from tests.support.server import LiveServer

README = Path(__file__).resolve().parents[1] / "README.md"
_PLACEHOLDER = re.compile(r"<([a-z][a-z-]*)>")


@dataclass
class Step:
    """One command of the block and the answer it should give (None: any success)."""

    line: str
    expect: Any = None
    where: int = 0


@dataclass
class Request:
    method: str
    url: str
    headers: dict[str, str] = field(default_factory=dict)
    body: str | None = None


def _block() -> tuple[dict[str, str], list[Step]]:
    text = README.read_text(encoding="utf-8")
    start = text.index("A case worker's path, engagement to closure")
    opening = text.index("```sh\n", start) + len("```sh\n")
    lines = text[opening : text.index("```", opening)].splitlines()
    variables: dict[str, str] = {}
    steps: list[Step] = []
    current: list[str] = []
    pending: list[str] = []
    for number, line in enumerate(lines, 1):
        if pending and not line.startswith("#    "):
            steps[-1].expect = json.loads(" ".join(pending))
            pending = []
        if current:
            current.append(line)
        elif match := re.fullmatch(r"([A-Z]+)='(.*)'", line):
            variables[match[1]] = match[2]
            continue
        elif line.startswith("curl "):
            current = [line]
        elif expect := re.fullmatch(r"#\s+-> (\{.*)", line):
            pending = [expect[1]]
            continue
        elif pending and line.startswith("#"):
            pending.append(line.lstrip("# "))
            continue
        else:
            continue
        if not current[-1].endswith("\\") and _balanced("\n".join(current)):
            joined = "\n".join(c.removesuffix("\\") for c in current)
            steps.append(Step(joined, where=number))
            current = []
    if pending:
        steps[-1].expect = json.loads(" ".join(pending))
    assert not current, "the block ends inside a command"
    return variables, steps


def _balanced(command: str) -> bool:
    """Whether the single quotes of a command are closed (a -d '...' body spans lines)."""
    return command.count("'") % 2 == 0


def _requests(tokens: list[str], variables: dict[str, str]) -> Request:
    """One curl invocation's tokens as a request."""
    assert tokens[0] == "curl", tokens
    request = Request("GET", "")
    items = iter(tokens[1:])
    for token in items:
        if token == "-s":
            continue
        if token == "-X":
            request.method = next(items)
        elif token == "-H":
            name, _, value = next(items).partition(":")
            request.headers[name.strip()] = value.strip()
        elif token == "-d":
            request.body = next(items)
            if request.method == "GET":
                request.method = "POST"
        elif token == ">":
            next(items)
        elif token.startswith("$"):
            # A variable holding -H options.
            expanded = shlex.split(variables[token[1:]])
            sub = _requests(["curl", *expanded, "localhost:8000/"], variables)
            request.headers.update(sub.headers)
        else:
            request.url = token
    return request


def _jq(document: Any, program: str) -> Any:
    """The jq programs the README uses: `.field = <json>` assignments joined by `|`."""
    for part in program.split(" | "):
        match = re.fullmatch(r"\.([a-z_]+) = (.+)", part.strip())
        assert match, f"unsupported jq {part!r}"
        document[match[1]] = json.loads(match[2])
    return document


def _fill(text: str, bound: dict[str, str]) -> str:
    def value(match: re.Match[str]) -> str:
        name = match[1]
        assert name in bound, f"<{name}> is used before an answer gave it"
        return bound[name]

    return _PLACEHOLDER.sub(value, text)


def _match(expected: Any, actual: Any, bound: dict[str, str], where: str) -> None:
    """actual holds what expected says (dicts: the keys given; lists: the items given, in
    order); a "<name>" string binds name to the actual value, or must equal it if bound."""
    if isinstance(expected, str) and (placeholder := re.fullmatch(r"<([a-z][a-z-]*)>", expected)):
        name = placeholder[1]
        assert actual is not None, f"{where}: no value for <{name}>"
        if name in bound:
            assert str(actual) == bound[name], f"{where}: <{name}> is {bound[name]}, got {actual}"
        bound[name] = str(actual)
    elif isinstance(expected, dict):
        assert isinstance(actual, dict), f"{where}: expected an object, got {actual!r}"
        for key, value in expected.items():
            assert key in actual, f"{where}: no {key!r} in {sorted(actual)}"
            _match(value, actual[key], bound, f"{where}.{key}")
    elif isinstance(expected, list):
        assert isinstance(actual, list) and len(actual) >= len(expected), f"{where}: {actual!r}"
        for index, value in enumerate(expected):
            _match(value, actual[index], bound, f"{where}[{index}]")
    else:
        if isinstance(expected, str):
            # A placeholder inside a text stands for a value already given.
            expected = _fill(expected, bound)
        assert expected == actual, f"{where}: expected {expected!r}, got {actual!r}"


def _send(http: httpx.Client, request: Request, bound: dict[str, str]) -> httpx.Response:
    url = _fill(request.url, bound).replace("localhost:8000", "")
    url = url.replace("\\$", "$")
    body = _fill(request.body, bound) if request.body is not None else None
    return http.request(
        request.method,
        url,
        content=body.encode() if body is not None else None,
        headers=request.headers,
    )


@pytest.fixture
def root(live: LiveServer, backend: Backend) -> Iterator[httpx.Client]:
    backend.truncate()
    with httpx.Client(base_url=live.root, timeout=30) as http:
        yield http


def test_the_block_is_read_whole() -> None:
    variables, steps = _block()
    assert set(variables) == {"OP", "H", "HOUSING"}
    assert len(steps) >= 30
    assert sum(1 for s in steps if s.expect is not None) >= 15
    stages = [s.line for s in steps if '.stage = "' in s.line]
    assert len(stages) == 6  # assessment ... closure, each a step after engagement


def test_the_case_workers_path_runs_as_written(root: httpx.Client, live: LiveServer) -> None:
    variables, steps = _block()
    bound: dict[str, str] = {"today": live_today(root)}
    for step in steps:
        where = f"README block line {step.where}: {step.line.splitlines()[0][:70]}"
        segments = _segments(shlex.split(step.line))
        if len(segments) == 3:
            # curl GET | jq program | curl -X PUT -d @-
            read = _send(root, _requests(segments[0], variables), bound)
            assert read.status_code == 200, f"{where}: {read.text}"
            (program,) = segments[1][1:]
            write = _requests(segments[2], variables)
            write.body = json.dumps(_jq(read.json(), program))
            response = _send(root, write, bound)
        else:
            (segment,) = segments
            response = _send(root, _requests(segment, variables), bound)
        assert response.is_success, f"{where}: {response.status_code} {response.text[:500]}"
        if step.expect is not None:
            _match(step.expect, response.json(), bound, where)
    for name in ("case", "client", "plan", "goal", "referral", "consent", "comprehensive"):
        assert name in bound, name


def _segments(tokens: list[str]) -> list[list[str]]:
    found: list[list[str]] = [[]]
    for token in tokens:
        if token == "|":
            found.append([])
        else:
            found[-1].append(token)
    return found


def live_today(http: httpx.Client) -> str:
    """The server's today (its clock is fixed in tests): the date of a fresh version."""
    response = http.get("/fhir/metadata")
    assert response.status_code == 200
    stamp = str(response.json().get("date", ""))[:10]
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", stamp), stamp
    return stamp
