"""Alembic, driven from code: ``craton-manage db …`` and the tests use these."""

from __future__ import annotations

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, MetaData
from taskflow.persistence.backends.sqlalchemy import tables as taskflow_tables

from craton.db.models import Base
from craton.db.session import make_engine

SCRIPT_LOCATION = "craton.db:migrations"
"""The migrations, as a resource of this package: Alembic finds them wherever craton is
imported from (a wheel's install, or the checkout of an editable one)."""


def alembic_config(engine: Engine) -> Config:
    config = Config()
    config.set_main_option("script_location", SCRIPT_LOCATION)
    config.set_main_option("sqlalchemy.url",
                           engine.url.render_as_string(hide_password=False).replace("%", "%%"))
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    with engine.begin() as connection:
        config = alembic_config(engine)
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def downgrade(engine: Engine, revision: str) -> None:
    with engine.begin() as connection:
        config = alembic_config(engine)
        config.attributes["connection"] = connection
        command.downgrade(config, revision)


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def head_revision(engine: Engine) -> str | None:
    return ScriptDirectory.from_config(alembic_config(engine)).get_current_head()


def expected_metadata() -> MetaData:
    """Everything the migrations build: Craton's models and TaskFlow's persistence tables."""
    combined = MetaData()
    for table in Base.metadata.tables.values():
        table.to_metadata(combined)
    taskflow_tables.fetch(combined)
    return combined


def schema_problem(engine: Engine) -> str | None:
    """Why the database cannot be used as it is (not migrated to the newest schema)."""
    current, head = current_revision(engine), head_revision(engine)
    if current == head:
        return None
    return (f"the database schema is at revision {current or 'base (empty)'}, not {head}: "
            "run `craton-manage db upgrade`")


def schema_problem_at(url: str) -> str | None:
    """:func:`schema_problem` of the database at ``url`` (what a command checks before it
    starts)."""
    engine = make_engine(url)
    try:
        return schema_problem(engine)
    finally:
        engine.dispose()


def schema_differences(engine: Engine) -> list[object]:
    """What differs between the database's schema and what the migrations should have built
    (empty when they agree)."""
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(context, expected_metadata()))
