"""The real servers the benchmarks start on 127.0.0.1 — Debian's redis-server and craton-api —
each stopped by the PID (process group) it was started with — and an in-process Craton app on
SQLite beside them."""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from flask import Flask

from craton.api import create_app
from craton.config import DefaultSettings, RedisSettings, Settings
from craton.db import migrate
from craton.db.session import Database


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_port(port: int) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing on port {port}")


@contextlib.contextmanager
def _serving(command: list[str], port: int, env: dict[str, str] | None = None,
             log: Path | None = None) -> Iterator[None]:
    output = log.open("ab") if log is not None else subprocess.DEVNULL
    process = subprocess.Popen(command, env=env, stdout=output, stderr=subprocess.STDOUT,
                               start_new_session=True)
    try:
        wait_port(port)
        yield
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(5)


@contextlib.contextmanager
def redis_server() -> Iterator[str]:
    """A private redis-server without persistence, requiring a password (Craton refuses a
    Redis it could reach without one while jobs run sandboxed); yields its URL."""
    port = free_port()
    password = secrets.token_hex(16)
    with _serving(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                   "--appendonly", "no", "--requirepass", password], port):
        yield f"redis://:{password}@127.0.0.1:{port}/0"


@contextlib.contextmanager
def craton_api(data_dir: str, db_url: str, redis_url: str) -> Iterator[int]:
    """craton-api on ``db_url`` with ``redis_url`` as its events' fast path; yields its port.
    Its log is ``<data_dir>/craton-api.log``."""
    port = free_port()
    env = {**os.environ, "CRATON_DATA_DIR": data_dir, "CRATON_DATABASE_URL": db_url,
           "CRATON_REDIS_URL": redis_url, "CRATON_LOG_LEVEL": "WARNING", "HOME": data_dir}
    with _serving([str(Path(sys.executable).parent / "craton-api"), "--port", str(port)], port,
                  env, Path(data_dir) / "craton-api.log"):
        yield port


@contextlib.contextmanager
def embedded_app(data_dir: str, redis_url: str) -> Iterator[tuple[Flask, Database, str]]:
    """A Craton app in this process on a migrated SQLite database in ``data_dir``, publishing
    events to ``redis_url``: yields the app, its database and the database's URL (for a
    craton-api beside it), and closes both."""
    db_url = f"sqlite:///{data_dir}/bench.db"
    db = Database(db_url)
    migrate.upgrade(db.engine)
    settings = Settings(DEFAULT=DefaultSettings(data_dir=data_dir),
                        redis=RedisSettings(url=redis_url))
    app = create_app(settings, database=db)
    try:
        yield app, db, db_url
    finally:
        app.extensions["craton"].close()
        db.dispose()
