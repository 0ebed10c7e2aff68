"""A real rest-hook receiver: an HTTP server on 127.0.0.1 in a thread that records every
notification Bundle it is sent, and can be taken down and brought back on the same port."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.support.server import free_port


@dataclass
class Received:
    """One POST as the receiver saw it."""

    at: float  # time.time() when it arrived
    headers: dict[str, str]
    bundle: dict[str, Any]

    @property
    def status(self) -> dict[str, Any]:
        """The SubscriptionStatus (first entry)."""
        resource: dict[str, Any] = self.bundle["entry"][0]["resource"]
        return resource

    @property
    def kind(self) -> str:
        return str(self.status["type"])

    @property
    def event_numbers(self) -> list[int]:
        return [int(e["eventNumber"]) for e in self.status.get("notificationEvent", [])]


@dataclass
class Receiver:
    """Records notifications; answer_status other than 200 makes it refuse them."""

    port: int = field(default_factory=free_port)
    answer_status: int = 200
    received: list[Received] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                status = receiver.answer_status
                if status == 200:
                    item = Received(time.time(), dict(self.headers.items()), json.loads(body))
                    with receiver._lock:
                        receiver.received.append(item)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_args: Any) -> None:
                pass

        ThreadingHTTPServer.allow_reuse_address = True
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        # A short poll interval: shutdown() waits for the next poll (0.5 s by default).
        threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        return self

    def stop(self) -> None:
        """Go down: the port refuses connections until start() again."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def of_kind(self, kind: str) -> list[Received]:
        with self._lock:
            return [r for r in self.received if r.kind == kind]

    def events(self) -> list[int]:
        """Event numbers in arrival order (duplicates kept)."""
        return [n for r in self.of_kind("event-notification") for n in r.event_numbers]

    def wait_for(self, condition: Callable[[Receiver], bool], timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while not condition(self):
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"receiver condition not met in {timeout} s; got "
                    f"{[(r.kind, r.event_numbers) for r in self.received]}"
                )
            time.sleep(0.02)


def wait_until(condition: Callable[[], bool], timeout: float = 15.0, what: str = "") -> None:
    """Poll until condition() is true."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not met in {timeout} s: {what}")
        time.sleep(0.02)
