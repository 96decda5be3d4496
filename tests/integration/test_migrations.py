"""The migrations build exactly the schema the models describe, on SQLite and on MariaDB, and
can be undone and redone: what ``craton-manage db upgrade`` does to an operator's database."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, inspect, select, text
from sqlalchemy.exc import DBAPIError

from craton.db import migrate
from craton.db.models import Quota, Tenant, TenantQuota
from craton.db.session import Database, make_engine

ALEMBIC_TABLE = "alembic_version"
TASKFLOW_TABLES = ("logbooks", "flowdetails", "atomdetails")


@pytest.fixture
def empty_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A new, empty database of ``backend``, for this test alone.

    On MariaDB it is created with the server's usual case-insensitive collation, so the test
    proves the migrations set utf8mb4_bin on their tables themselves.
    """
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'fresh.db'}"
        return
    server = request.getfixturevalue("mariadb_server")
    name = f"craton_migrations_{uuid.uuid4().hex[:12]}"
    server.execute(f"CREATE DATABASE {name} CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci")
    try:
        yield server.url(name)
    finally:
        server.execute(f"DROP DATABASE {name}")


@pytest.fixture
def engine(empty_url: str) -> Iterator[Engine]:
    engine = make_engine(empty_url)
    try:
        yield engine
    finally:
        engine.dispose()


def table_names(engine: Engine) -> set[str]:
    return set(inspect(engine).get_table_names())


def test_upgrade_builds_the_models_schema(engine: Engine) -> None:
    assert table_names(engine) == set()
    assert migrate.current_revision(engine) is None

    migrate.upgrade(engine)

    assert migrate.schema_differences(engine) == []
    assert migrate.current_revision(engine) == migrate.head_revision(engine) is not None
    assert table_names(engine) == set(migrate.expected_metadata().tables) | {ALEMBIC_TABLE}


def test_every_table_has_a_primary_key(engine: Engine) -> None:
    """Galera refuses writes to tables without one; the models promise it for every table."""
    migrate.upgrade(engine)
    inspector = inspect(engine)
    missing = [name for name in inspector.get_table_names()
               if not inspector.get_pk_constraint(name)["constrained_columns"]]
    assert missing == []


def test_names_compare_case_sensitively(engine: Engine, backend: str) -> None:
    """Names compare case-sensitively, as in Ansible: "Web" and "web" are two tenants. On
    MariaDB that takes InnoDB tables (transactions, Galera replication) with a binary
    collation on every text column."""
    migrate.upgrade(engine)
    with engine.begin() as connection:
        for name in ("web", "Web"):
            connection.execute(text(
                "INSERT INTO tenants (name, created_at, updated_at, version) "
                "VALUES (:name, '2026-01-01', '2026-01-01', 1)"), {"name": name})
    with engine.connect() as connection:
        found = connection.execute(text("SELECT name FROM tenants WHERE name = 'web'")).all()
    assert [row.name for row in found] == ["web"]
    if backend == "mariadb":
        assert_innodb_utf8mb4_bin(engine)


def assert_innodb_utf8mb4_bin(engine: Engine) -> None:
    with engine.connect() as connection:
        tables = connection.execute(text(
            "SELECT TABLE_NAME, ENGINE, TABLE_COLLATION FROM information_schema.TABLES "
            "WHERE TABLE_SCHEMA = DATABASE()")).all()
        columns = connection.execute(text(
            "SELECT TABLE_NAME, COLUMN_NAME, COLLATION_NAME FROM information_schema.COLUMNS "
            "WHERE TABLE_SCHEMA = DATABASE() AND COLLATION_NAME IS NOT NULL")).all()
    expected = set(migrate.expected_metadata().tables) | {ALEMBIC_TABLE}
    assert {row.TABLE_NAME for row in tables} == expected
    assert [row.TABLE_NAME for row in tables if row.ENGINE != "InnoDB"] == []
    # alembic_version only holds revision ids; Craton's own tables must not inherit the
    # database's case-insensitive default. TaskFlow's tables (uuids and its own names) keep
    # what TaskFlow declares.
    foreign = {ALEMBIC_TABLE, *TASKFLOW_TABLES}
    ours = {row.TABLE_NAME: row.TABLE_COLLATION for row in tables
            if row.TABLE_NAME not in foreign}
    assert {name for name, collation in ours.items() if collation != "utf8mb4_bin"} == set()
    text_columns = [(row.TABLE_NAME, row.COLUMN_NAME, row.COLLATION_NAME) for row in columns
                    if row.TABLE_NAME not in foreign]
    assert ("hosts", "name", "utf8mb4_bin") in text_columns
    assert [c for c in text_columns if c[2] != "utf8mb4_bin"] == []


def test_downgrade_to_base_leaves_only_alembic_version(engine: Engine) -> None:
    migrate.upgrade(engine)
    migrate.downgrade(engine, "base")

    assert table_names(engine) == {ALEMBIC_TABLE}
    assert migrate.current_revision(engine) is None
    with engine.connect() as connection:
        assert connection.execute(text(f"SELECT COUNT(*) FROM {ALEMBIC_TABLE}")).scalar() == 0


def test_upgrade_after_downgrade_rebuilds_the_schema(engine: Engine) -> None:
    migrate.upgrade(engine)
    migrate.downgrade(engine, "base")
    migrate.upgrade(engine)

    assert migrate.schema_differences(engine) == []
    assert migrate.current_revision(engine) == migrate.head_revision(engine)
    assert table_names(engine) == set(migrate.expected_metadata().tables) | {ALEMBIC_TABLE}


def test_upgrade_twice_is_a_no_op(engine: Engine) -> None:
    migrate.upgrade(engine)
    migrate.upgrade(engine)
    assert migrate.current_revision(engine) == migrate.head_revision(engine)
    assert migrate.schema_differences(engine) == []


def test_migrated_schema_never_reuses_ids(empty_url: str) -> None:
    """An id in a log always means one object: deleting the newest tenant does not hand its
    id to the next one (AUTOINCREMENT on SQLite, InnoDB's counter on MariaDB)."""
    db = Database(empty_url)
    try:
        migrate.upgrade(db.engine)
        with db.transaction() as session:
            first = Tenant(name="first")
            session.add(first)
        with db.transaction() as session:
            session.delete(session.get(Tenant, first.id))
        with db.transaction() as session:
            second = Tenant(name="second")
            session.add(second)
        assert second.id > first.id
        with db.transaction(write=False) as session:
            assert session.scalars(select(Tenant.name)).all() == ["second"]
    finally:
        db.dispose()


def test_migrated_schema_keeps_foreign_keys_cascading(empty_url: str) -> None:
    """Deleting a tenant row removes its regions: the ON DELETE CASCADE the API relies on is in
    the migrated schema, not only in the models."""
    db = Database(empty_url)
    try:
        migrate.upgrade(db.engine)
        inspector = inspect(db.engine)
        regions_fks = inspector.get_foreign_keys("regions")
        assert [(fk["referred_table"], fk["options"].get("ondelete")) for fk in regions_fks] \
            == [("tenants", "CASCADE")]
        with db.engine.begin() as connection:
            connection.execute(text(
                "INSERT INTO tenants (name, created_at, updated_at, version) "
                "VALUES ('t', '2026-01-01', '2026-01-01', 1)"))
            tenant_id = connection.execute(text("SELECT id FROM tenants")).scalar()
            connection.execute(text(
                "INSERT INTO regions (tenant_id, name, created_at, updated_at, version) "
                "VALUES (:t, 'r', '2026-01-01', '2026-01-01', 1)"), {"t": tenant_id})
        with db.engine.begin() as connection:
            connection.execute(text("DELETE FROM tenants"))
        with db.engine.connect() as connection:
            assert connection.execute(text("SELECT COUNT(*) FROM regions")).scalar() == 0
    finally:
        db.dispose()


def test_quotas_arrive_on_a_database_that_already_holds_tenants(empty_url: str) -> None:
    """0003 adds the tenants' own quotas to a database in use: existing tenants keep their
    rows and have no quota of their own (the configured defaults apply); a quota row goes
    with its tenant; going back to 0002 drops only the quotas."""
    db = Database(empty_url)
    try:
        migrate.upgrade(db.engine, "0002")
        with db.engine.begin() as connection:
            connection.execute(text(
                "INSERT INTO tenants (name, created_at, updated_at, version) "
                "VALUES ('before', '2026-01-01', '2026-01-01', 1)"))
        migrate.upgrade(db.engine)
        assert migrate.schema_differences(db.engine) == []
        with db.transaction() as session:
            tenant = session.scalars(select(Tenant)).one()
            assert tenant.quotas == {}
            tenant.quota_rows.append(TenantQuota(name=Quota.HOSTS, maximum=5))
        with db.transaction(write=False) as session:
            assert session.scalars(select(Tenant)).one().quotas == {Quota.HOSTS: 5}
        with db.engine.begin() as connection, pytest.raises(DBAPIError, match="maximum"):
            connection.execute(text(
                "INSERT INTO tenant_quotas (tenant_id, name, maximum) "
                "SELECT id, 'groups', -1 FROM tenants"))

        migrate.downgrade(db.engine, "0002")
        assert "tenant_quotas" not in table_names(db.engine)
        with db.engine.connect() as connection:
            assert connection.execute(text("SELECT name FROM tenants")).scalars().all() == [
                "before"]
        migrate.upgrade(db.engine)
        with db.engine.begin() as connection:
            connection.execute(text("DELETE FROM tenants"))
            connection.execute(text(
                "INSERT INTO tenants (name, created_at, updated_at, version) "
                "VALUES ('after', '2026-01-01', '2026-01-01', 1)"))
            connection.execute(text(
                "INSERT INTO tenant_quotas (tenant_id, name, maximum) "
                "SELECT id, 'secrets', 3 FROM tenants"))
            connection.execute(text("DELETE FROM tenants"))
            assert connection.execute(text("SELECT COUNT(*) FROM tenant_quotas")).scalar() == 0
    finally:
        db.dispose()
