"""Retries with back-off, against a small loopback HTTP server that answers what craton-api
cannot be made to answer on demand (503 with Retry-After, 429, 502); a refused connection is
a real closed port."""

from __future__ import annotations

import http.server
import json
import threading
import time
from collections.abc import Iterator

import pytest

from cratonclient import Client
from cratonclient.errors import ConnectionFailed, ServerError, TooManyRequests
from tests import services


class Script:
    """What the server answers, one status per request (then 200), and what it saw."""

    def __init__(self) -> None:
        self.statuses: list[tuple[int, dict[str, str]]] = []
        self.seen: list[tuple[str, float]] = []


@pytest.fixture
def flaky() -> Iterator[tuple[str, Script]]:
    script = Script()

    class Handler(http.server.BaseHTTPRequestHandler):
        def answer(self) -> None:
            script.seen.append((self.command, time.monotonic()))
            length = int(self.headers.get("Content-Length") or 0)
            self.rfile.read(length)
            status, headers = script.statuses.pop(0) if script.statuses else (200, {})
            body = json.dumps({"items": [], "next": None} if status == 200 else {
                "error": {"code": status, "message": f"status {status}", "fields": {},
                          "request_id": "r1"}}).encode()
            self.send_response(status)
            for name, value in {"Content-Type": "application/json", **headers}.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = do_DELETE = answer

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", script
    finally:
        server.shutdown()
        server.server_close()


def test_get_is_retried_honouring_retry_after(flaky: tuple[str, Script]) -> None:
    url, script = flaky
    script.statuses = [(503, {"Retry-After": "1"}), (502, {}), (429, {"Retry-After": "1"})]
    client = Client(url, retries=3, backoff=0.01)
    assert list(client.tenants.list()) == []
    times = [at for _, at in script.seen]
    assert len(times) == 4
    assert times[1] - times[0] >= 0.9, "Retry-After: 1 was honoured"
    assert times[3] - times[2] >= 0.9


def test_retries_run_out_into_the_error(flaky: tuple[str, Script]) -> None:
    url, script = flaky
    script.statuses = [(429, {"Retry-After": "0"})] * 3
    with pytest.raises(TooManyRequests) as error:
        list(Client(url, retries=2, backoff=0.01).tenants.list())
    assert error.value.code == 429 and error.value.retry_after == 0 and len(script.seen) == 3


def test_a_post_is_never_repeated(flaky: tuple[str, Script]) -> None:
    url, script = flaky
    script.statuses = [(503, {"Retry-After": "0"})]
    with pytest.raises(ServerError) as error:
        Client(url, retries=3, backoff=0.01).tenants.create("acme")
    assert error.value.code == 503 and error.value.request_id == "r1"
    assert [method for method, _ in script.seen] == ["POST"]


def test_a_closed_port_is_a_connection_error() -> None:
    port = services.free_port()
    started = time.monotonic()
    with pytest.raises(ConnectionFailed) as error:
        Client(f"http://127.0.0.1:{port}", retries=2, backoff=0.1).hosts.get(1)
    assert error.value.code is None and "could not connect" in str(error.value)
    assert time.monotonic() - started >= 0.2, "backed off between the tries"
