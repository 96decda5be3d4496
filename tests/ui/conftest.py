"""What the browser tests share: a real craton-api (gunicorn, SQLite, the embedded engine) on
127.0.0.1, Debian's Chromium driven by Playwright, a TCP proxy whose connections a test can cut,
and a directory for the screenshots the tests save."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from tests.integration.test_server import (
    Server,
    craton_environment,
    running_api,
    upgrade_database,
)

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@dataclasses.dataclass
class UiServer(Server):
    data_dir: Path = Path()
    """Its data directory; ``<data_dir>/sources/<tenant id>`` is where a tenant's jobs may
    read playbooks from."""
    gates: Path = Path()
    """A directory its sandboxed jobs may read: a playbook waits there for the test's go-ahead
    (see ``test_progress_page.make_fleet``)."""


@pytest.fixture(scope="module")
def ui_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UiServer]:
    home = tmp_path_factory.mktemp("craton-ui")
    gates = home / "gates"
    gates.mkdir()
    env = craton_environment(home, CRATON_JOBS_SANDBOX_PATHS=str(gates))
    upgrade_database(env)
    with running_api(env, home) as running:
        yield UiServer(port=running.port, process=running.process, log=running.log,
                       data_dir=home / "data", gates=gates)


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update",
                  "--disable-sync"])
        try:
            yield launched
        finally:
            launched.close()


class PageErrors:
    """Every uncaught error and console error of the pages a test opens: a test fails on any."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def watch(self, page: Page) -> Page:
        page.on("pageerror", lambda error: self.seen.append(f"{page.url}: {error}"))
        page.on("console", lambda message: self.seen.append(f"{page.url}: {message.text}")
                if message.type == "error" and "ERR_CONNECTION" not in message.text
                and "Failed to load resource" not in message.text else None)
        return page


@pytest.fixture
def page_errors() -> Iterator[PageErrors]:
    errors = PageErrors()
    yield errors
    assert errors.seen == []


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """Where screenshots go: $CRATON_TEST_ARTIFACTS, else test-artifacts/ui in the checkout."""
    root = Path(os.environ.get("CRATON_TEST_ARTIFACTS", REPO / "test-artifacts")) / "ui"
    root.mkdir(parents=True, exist_ok=True)
    return root


class CuttableProxy:
    """Forwards 127.0.0.1:<port> to a server; ``cut`` drops every open connection and refuses
    new ones for a while — a lost network, as a browser sees it."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.refuse_until = 0.0
        self.cuts = 0
        self.lock = threading.Lock()
        self.open: list[socket.socket] = []
        self.running = True
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def cut(self, refuse_for: float) -> None:
        with self.lock:
            self.refuse_until = time.monotonic() + refuse_for
            self.cuts += 1
            for sock in self.open:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            self.open.clear()

    def close(self) -> None:
        self.running = False
        self.cut(0)
        self.listener.close()

    def _accept(self) -> None:
        while self.running:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if time.monotonic() < self.refuse_until:
                client.close()
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:
                client.close()
                continue
            with self.lock:
                self.open += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)


@pytest.fixture
def proxy(ui_server: UiServer) -> Iterator[CuttableProxy]:
    forwarding = CuttableProxy(ui_server.port)
    yield forwarding
    forwarding.close()
