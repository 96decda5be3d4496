"""The data directory is Craton's alone: created 0700, with the SQLite database (and its -wal
and -shm files) and the secrets key 0600 — whatever the umask, and also when an older version
left the database readable by others."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from craton.db.session import Database
from craton.secrets.backends import read_or_create_key


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(autouse=True)
def open_umask() -> Iterator[None]:
    """A umask that leaves new files readable by everyone, as many systems have."""
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_a_new_data_directory_and_database_are_private(tmp_path: Path) -> None:
    data = tmp_path / "share" / "craton"
    db = Database(f"sqlite:///{data / 'craton.db'}")
    with db.transaction() as session:
        session.execute(text("CREATE TABLE t (a INTEGER)"))
        session.execute(text("INSERT INTO t VALUES (1)"))
    files = {path.name: mode(path) for path in data.iterdir()}
    db.dispose()
    assert (mode(tmp_path / "share"), mode(data)) == (0o700, 0o700)
    assert files == {"craton.db": 0o600, "craton.db-wal": 0o600, "craton.db-shm": 0o600}
    read_or_create_key(data / "secrets.key")
    assert mode(data / "secrets.key") == 0o600


def test_a_database_left_readable_is_narrowed(tmp_path: Path) -> None:
    """An existing database (with its -wal) of mode 0644 is 0600 once Craton opens it; the
    existing directory it is in keeps the mode the operator gave it."""
    (tmp_path / "craton.db").touch(mode=0o644)
    (tmp_path / "craton.db-wal").touch(mode=0o644)
    tmp_path.chmod(0o755)
    Database(f"sqlite:///{tmp_path / 'craton.db'}").dispose()
    assert mode(tmp_path / "craton.db") == mode(tmp_path / "craton.db-wal") == 0o600
    assert mode(tmp_path) == 0o755


def test_a_key_file_creates_a_private_directory(tmp_path: Path) -> None:
    read_or_create_key(tmp_path / "data" / "secrets.key")
    assert mode(tmp_path / "data") == 0o700
    assert mode(tmp_path / "data" / "secrets.key") == 0o600
