"""Fixtures: real databases (SQLite files and a MariaDB server the session starts), apps built
on them, and clients that speak to the apps over WSGI.

``--db=sqlite`` / ``--db=mariadb`` / ``--db=all`` (default) chooses the backends that tests
taking the ``database`` fixture run against.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import delete

from craton.api import create_app
from craton.config import DatabaseSettings, DefaultSettings, Settings
from craton.db import migrate
from craton.db.models import Change, Tenant
from craton.db.session import Database
from tests import services

BACKENDS = ("sqlite", "mariadb")

# Tools installed with Craton (ansible-playbook, ansible-inventory, ansible-runner, the craton
# commands) live beside the interpreter; tests may run without the virtualenv activated.
os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--db", default="all", choices=("all", *BACKENDS),
                     help="database backends to run database tests against")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend" in metafunc.fixturenames:
        chosen = metafunc.config.getoption("db")
        backends = BACKENDS if chosen == "all" else (chosen,)
        if metafunc.definition.get_closest_marker("one_backend") and chosen == "all":
            backends = backends[:1]
        metafunc.parametrize("backend", backends, scope="session")


@pytest.fixture(scope="session")
def mariadb_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[services.MariaDB]:
    with services.mariadb(tmp_path_factory.mktemp("mariadb")) as server:
        yield server


_database_names = itertools.count(1)


@pytest.fixture(scope="session")
def database_url(backend: str, request: pytest.FixtureRequest,
                 tmp_path_factory: pytest.TempPathFactory) -> str:
    """A fresh, empty database of ``backend`` (schema not created)."""
    if backend == "sqlite":
        return f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'craton.db'}"
    server: services.MariaDB = request.getfixturevalue("mariadb_server")
    name = f"craton_{next(_database_names)}"
    server.execute(f"CREATE DATABASE {name} CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
    return server.url(name)


@pytest.fixture(scope="session")
def migrated_database(database_url: str) -> Iterator[Database]:
    """One database per backend for the session, built by the migrations themselves."""
    db = Database(database_url)
    migrate.upgrade(db.engine)
    yield db
    db.dispose()


@pytest.fixture
def database(migrated_database: Database) -> Iterator[Database]:
    """The session's database, emptied after each test (deleting tenants cascades to all but
    the change records, which outlive what they record and go last)."""
    yield migrated_database
    with migrated_database.transaction() as session:
        session.execute(delete(Tenant))
    with migrated_database.connection() as connection:
        connection.execute(delete(Change))


def make_settings(tmp_path: Path, **api: Any) -> Settings:
    from craton.config import ApiSettings

    return Settings(
        DEFAULT=DefaultSettings(data_dir=str(tmp_path / "data")),
        database=DatabaseSettings(),
        api=ApiSettings(**api),
    )


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path)


@pytest.fixture
def app(settings: Settings, database: Database) -> Iterator[Flask]:
    app = create_app(settings, database=database)
    yield app
    app.extensions["craton"].close()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[services.Redis]:
    with services.redis_server(tmp_path_factory.mktemp("redis")) as server:
        yield server


class Client:
    """The Flask test client, speaking JSON, with the tenant scope as a keyword. Like any API
    client (and the web pages) it sends ``X-Craton-Request: 1``, which shows the server a
    request without a JSON body was not forged by another site's form."""

    def __init__(self, flask_client: FlaskClient) -> None:
        self.http = flask_client

    def request(self, method: str, url: str, json: Any = None, *, tenant: int | None = None,
                roles: str | None = None, headers: dict[str, str] | None = None,
                **kwargs: Any) -> Any:
        headers = {"X-Craton-Request": "1", **(headers or {})}
        if tenant is not None:
            headers["X-Craton-Tenant"] = str(tenant)
        if roles is not None:
            headers["X-Craton-Roles"] = roles
        if json is not None:
            kwargs["json"] = json
        return self.http.open(url, method=method, headers=headers, **kwargs)

    def get(self, url: str, **kwargs: Any) -> Any:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, json: Any = None, **kwargs: Any) -> Any:
        return self.request("POST", url, json, **kwargs)

    def put(self, url: str, json: Any = None, **kwargs: Any) -> Any:
        return self.request("PUT", url, json, **kwargs)

    def patch(self, url: str, json: Any = None, **kwargs: Any) -> Any:
        return self.request("PATCH", url, json, **kwargs)

    def delete(self, url: str, json: Any = None, **kwargs: Any) -> Any:
        return self.request("DELETE", url, json, **kwargs)

    def create(self, url: str, json: Any, **kwargs: Any) -> dict[str, Any]:
        """POST that must succeed with 201; returns the created object."""
        response = self.post(url, json, **kwargs)
        assert response.status_code == 201, (response.status_code, response.get_json())
        return response.get_json()


@pytest.fixture
def client(app: Flask) -> Client:
    return Client(app.test_client())


@pytest.fixture
def region(client: Client) -> dict[str, Any]:
    """A tenant with one region, for tests about what lives in a region."""
    tenant = client.create("/v1/tenants", {"name": "acme"})
    return client.create(f"/v1/tenants/{tenant['id']}/regions", {"name": "dfw"})


def error_of(response: Any) -> dict[str, Any]:
    """The error object of a failed response, checked for the one shape every error has."""
    body = response.get_json()
    assert set(body) == {"error"}, body
    assert body["error"]["code"] == response.status_code
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    return body["error"]


@contextlib.contextmanager
def counting_queries(database: Database) -> Iterator[list[str]]:
    """Collect the SQL statements run inside the block."""
    from sqlalchemy import event

    statements: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    event.listen(database.engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(database.engine, "before_cursor_execute", record)
