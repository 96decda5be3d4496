"""Engines and sessions for SQLite (embedded) and MariaDB (production).

SQLite runs in WAL mode with foreign keys on and case-sensitive LIKE (as names compare on
MariaDB's binary collation). Write sessions start with ``BEGIN IMMEDIATE`` so two writers queue
on the database lock instead of failing half-way with "database is locked"; read sessions start
a plain deferred transaction and never block writers.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from craton.db import changes, discards, inventory_version
from craton.files import private_dir, touch_private

WRITE_OPTION = "craton_write"


def make_engine(url: str, *, pool_size: int = 5, pool_recycle: int = 3600,
                echo: bool = False) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            _private_sqlite_file(Path(parsed.database))
        engine = create_engine(url, echo=echo, connect_args={"timeout": 30})
        _configure_sqlite(engine)
        return engine
    kwargs: dict[str, Any] = {
        "echo": echo,
        "pool_size": pool_size,
        "pool_recycle": pool_recycle,
        "pool_pre_ping": True,
    }
    if parsed.get_backend_name() in ("mysql", "mariadb"):
        # READ COMMITTED avoids InnoDB gap locks between unrelated writers (and is what Galera
        # clusters are usually run with).
        kwargs["isolation_level"] = "READ COMMITTED"
    return create_engine(url, **kwargs)


def _private_sqlite_file(path: Path) -> None:
    """The database holds every tenant's inventory and sealed secrets: its directory is created
    0700 and the file 0600 before SQLite opens it. SQLite gives its -wal and -shm files the
    database file's mode; those an older version left wider are narrowed too."""
    private_dir(path.parent)
    touch_private(path)
    for suffix in ("-wal", "-shm"):
        companion = path.with_name(path.name + suffix)
        if companion.exists():
            touch_private(companion)


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" hook below issue BEGIN, instead of pysqlite's own guesswork.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        for pragma in ("foreign_keys=ON", "journal_mode=WAL", "synchronous=NORMAL",
                       "case_sensitive_like=ON", "busy_timeout=30000"):
            cursor.execute(f"PRAGMA {pragma}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        write = connection.get_execution_options().get(WRITE_OPTION, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


class Database:
    """An engine plus the session factory built on it; one per process (or per test)."""

    def __init__(self, url: str, **engine_options: Any) -> None:
        self.url = url
        self.engine = make_engine(url, **engine_options)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False, autoflush=True)
        inventory_version.watch(self._sessions)
        changes.watch(self._sessions)
        self._discarders: list[Callable[[list[str]], None]] = []
        discards.watch(self._sessions, self._discarded)

    def on_discard(self, callback: Callable[[list[str]], None]) -> None:
        """Call ``callback`` with the references to content kept outside the database that a
        committed transaction of this database dropped (``craton.db.discards``)."""
        self._discarders.append(callback)

    def _discarded(self, refs: list[str]) -> None:
        for callback in self._discarders:
            callback(refs)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def new_session(self, *, write: bool = False) -> Session:
        session = self._sessions()
        if write:
            session.connection(execution_options={WRITE_OPTION: True})
        return session

    def snapshot_session(self) -> Session:
        """A read session whose queries all see one consistent snapshot, for reads that span
        many statements (bundles). MariaDB needs REPEATABLE READ for that (the engine default
        is READ COMMITTED); a SQLite read transaction is a snapshot already."""
        session = self._sessions()
        if self.dialect in ("mysql", "mariadb"):
            session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
        return session

    @contextlib.contextmanager
    def transaction(self, *, write: bool = True) -> Iterator[Session]:
        """A session whose work is committed when the block ends normally."""
        session = self.new_session(write=write)
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    @contextlib.contextmanager
    def connection(self, *, write: bool = True) -> Iterator[Connection]:
        """A Core connection in a transaction committed when the block ends normally — for
        hot paths that write rows in bulk and need no ORM (the event sink)."""
        with self.engine.connect() as connection:
            if write:
                connection = connection.execution_options(**{WRITE_OPTION: True})
            with connection.begin():
                yield connection

    def dispose(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.dispose()
