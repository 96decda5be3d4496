"""The WSGI application: ``create_app`` builds a fresh one per call (tests make many)."""

from __future__ import annotations

import logging
import uuid

from flask import Flask, Response, g, request
from flask_smorest import Api
from sqlalchemy.exc import DBAPIError
from werkzeug.exceptions import UnsupportedMediaType

from craton import __version__
from craton.api import errors
from craton.api.auth import make_strategy
from craton.api.common import Services
from craton.api.v1 import BLUEPRINTS, schemas
from craton.config import Settings, load_settings
from craton.db.session import Database
from craton.secrets.backends import load_backend

LOG = logging.getLogger(__name__)

OPENAPI_INFO = {
    "description": "Craton keeps a fleet's inventory — tenants, regions, hosts, groups, "
                   "variables, secrets and references — and serves it to Ansible.",
}


class CratonApi(Api):
    """flask-smorest's Api with Craton's error shape (in the document and on the wire)."""

    ERROR_SCHEMA = schemas.ErrorSchema

    def _register_error_handlers(self) -> None:
        errors.register(self._app)


def create_app(settings: Settings | None = None, *, database: Database | None = None) -> Flask:
    settings = settings or load_settings()
    app = Flask("craton")
    app.config.update(
        API_TITLE="Craton",
        API_VERSION=__version__,
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/v1",
        OPENAPI_JSON_PATH="openapi.json",
        API_SPEC_OPTIONS={"info": OPENAPI_INFO},
        MAX_CONTENT_LENGTH=settings.api.max_body_size,
        JSON_SORT_KEYS=False,
    )
    app.json.sort_keys = False
    db = database or Database(settings.database_url, pool_size=settings.database.pool_size,
                              pool_recycle=settings.database.pool_recycle,
                              echo=settings.database.echo)
    app.extensions["craton"] = Services(settings=settings, db=db, secrets=load_backend(settings))
    strategy = make_strategy(settings)

    api = CratonApi(app)
    # Bodies parsed by hand (one host or a list of hosts) are documented by reference.
    api.spec.components.schema("HostCreate", schema=schemas.HostCreateSchema)
    for blueprint in BLUEPRINTS:
        api.register_blueprint(blueprint)

    @app.before_request
    def _authenticate() -> None:
        g.request_id = request.headers.get("X-Request-Id") or uuid.uuid4().hex
        g.context = strategy.authenticate(request, g.request_id)
        if request.content_length and not request.is_json:
            raise UnsupportedMediaType(
                "request bodies must be JSON (Content-Type: application/json)")

    @app.after_request
    def _finish(response: Response) -> Response:
        session = g.pop("db_session", None)
        if session is not None:
            try:
                if response.status_code < 400:
                    session.commit()
                else:
                    session.rollback()
            except DBAPIError as error:
                session.rollback()
                response = errors.handle_database_error(error)
            finally:
                session.close()
        response.headers["X-Request-Id"] = g.get("request_id", "-")
        return response

    @app.teardown_request
    def _close(_: BaseException | None) -> None:
        session = g.pop("db_session", None)
        if session is not None:
            session.close()

    return app
