"""Real services for the tests: each starts a private server on 127.0.0.1 in a temporary
directory and stops it by the PID it started — never anything else on the machine."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen[bytes], timeout: float = 30.0,
                  log: Path | None = None, host: str = "127.0.0.1") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            detail = log.read_text()[-2000:] if log and log.exists() else ""
            raise RuntimeError(f"server exited with {process.returncode}: {detail}")
        with contextlib.suppress(OSError), socket.create_connection((host, port), 0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listening on {host}:{port} after {timeout}s")


def stop(process: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    """SIGTERM the process we started, SIGKILL it if it lingers."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)


@dataclass
class MariaDB:
    port: int
    socket: Path
    process: subprocess.Popen[bytes]
    password: str = ""
    """root's password: jobs run sandboxed on this machine's network, so the database must
    not answer without one (Craton refuses such a URL while the sandbox is on)."""

    def url(self, database: str) -> str:
        return (f"mysql+pymysql://root:{self.password}@127.0.0.1:{self.port}/{database}"
                "?charset=utf8mb4")

    def execute(self, *statements: str) -> None:
        import pymysql

        connection = pymysql.connect(host="127.0.0.1", port=self.port, user="root",
                                     password=self.password)
        try:
            with connection.cursor() as cursor:
                for statement in statements:
                    cursor.execute(statement)
            connection.commit()
        finally:
            connection.close()


@contextlib.contextmanager
def mariadb(workdir: Path) -> Iterator[MariaDB]:
    """A throw-away MariaDB server (InnoDB, utf8mb4) on a free loopback port."""
    if shutil.which("mariadbd") is None:
        raise RuntimeError("mariadbd is not installed: run scripts/test, which installs it")
    datadir = workdir / "mariadb"
    datadir.mkdir(parents=True)
    subprocess.run(
        ["mariadb-install-db", "--no-defaults", f"--datadir={datadir}", "--user=root",
         "--auth-root-authentication-method=normal", "--skip-test-db"],
        check=True, capture_output=True,
    )
    port = free_port()
    sock = datadir / "sock"
    log = workdir / "mariadb.log"
    process = subprocess.Popen(
        ["mariadbd", "--no-defaults", f"--datadir={datadir}", f"--socket={sock}",
         f"--port={port}", "--bind-address=127.0.0.1", "--user=root", "--skip-name-resolve",
         "--character-set-server=utf8mb4", "--collation-server=utf8mb4_bin",
         "--innodb-flush-log-at-trx-commit=2", "--innodb-buffer-pool-size=256M",
         f"--log-error={log}", f"--pid-file={datadir / 'pid'}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    try:
        wait_for_port(port, process, log=log)
        server = MariaDB(port=port, socket=sock, process=process)
        password = secrets.token_hex(16)
        import pymysql

        connection = pymysql.connect(host="127.0.0.1", port=port, user="root")
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT host FROM mysql.user WHERE user = 'root'")
                for (host,) in cursor.fetchall():
                    try:
                        cursor.execute("ALTER USER 'root'@%s IDENTIFIED BY %s", (host, password))
                    except pymysql.err.OperationalError:
                        # root@<machine name>: unusable with --skip-name-resolve, and it must
                        # not stay open without a password.
                        cursor.execute("DROP USER 'root'@%s", (host,))
            connection.commit()
        finally:
            connection.close()
        server.password = password
        yield server
    finally:
        stop(process)


def environment_without_craton() -> dict[str, str]:
    """os.environ minus CRATON_* settings, so a developer's own settings never leak in."""
    return {k: v for k, v in os.environ.items() if not k.startswith("CRATON_")}


@dataclass
class Redis:
    port: int
    process: subprocess.Popen[bytes]
    workdir: Path
    password: str
    """Required by the server: sandboxed jobs share this machine's network (Craton refuses a
    Redis URL without a password while the sandbox is on)."""

    def url_of(self, db: int = 0) -> str:
        return f"redis://:{self.password}@127.0.0.1:{self.port}/{db}"

    @property
    def url(self) -> str:
        return self.url_of(0)

    def restart(self) -> None:
        """Stop the server and start it again on the same port (empty: --save '')."""
        stop(self.process)
        self.process = _start_redis(self.port, self.workdir, self.password)


def _start_redis(port: int, workdir: Path, password: str) -> subprocess.Popen[bytes]:
    log = workdir / f"redis-{port}.log"
    process = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", str(workdir), "--logfile", str(log),
         "--requirepass", password],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    wait_for_port(port, process, log=log)
    return process


@contextlib.contextmanager
def redis_server(workdir: Path) -> Iterator[Redis]:
    """A private redis-server on a free loopback port, nothing persisted."""
    if shutil.which("redis-server") is None:
        raise RuntimeError("redis-server is not installed: run scripts/test, which installs it")
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    password = secrets.token_hex(16)
    server = Redis(port=port, process=_start_redis(port, workdir, password), workdir=workdir,
                   password=password)
    try:
        yield server
    finally:
        stop(server.process)


@contextlib.contextmanager
def git_daemon(base: Path, *, host: str = "127.0.0.1", port: int | None = None) -> Iterator[int]:
    """``git daemon`` serving every repository below ``base`` over git:// on ``host``; yields
    its port."""
    port = port or free_port()
    log = base / f"git-daemon-{host}-{port}.log"
    with log.open("ab") as out:
        process = subprocess.Popen(
            ["git", "daemon", "--reuseaddr", "--export-all", f"--base-path={base}",
             f"--listen={host}", f"--port={port}", str(base)],
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            env={**os.environ, "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"})
    try:
        wait_for_port(port, process, log=log, host=host)
        yield port
    finally:
        stop(process)
