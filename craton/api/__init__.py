"""The WSGI application: ``create_app`` builds a fresh one per call (tests make many)."""

from __future__ import annotations

import dataclasses
import io
import logging
import uuid
from typing import Any

from flask import Flask, Response, g, request
from flask_smorest import Api
from sqlalchemy.exc import DBAPIError
from werkzeug.exceptions import UnsupportedMediaType
from werkzeug.routing import IntegerConverter, Map

from craton import __version__, web
from craton.api import errors
from craton.api.auth import NoAuth, make_strategy
from craton.api.bodies import parse_body
from craton.api.common import SAFE_METHODS, Services
from craton.api.v1 import BLUEPRINTS, schemas
from craton.config import Settings, load_settings
from craton.db.models import MAX_ID
from craton.db.session import Database
from craton.errors import Forbidden
from craton.policy import Policy
from craton.secrets import outbox
from craton.secrets.backends import load_backend
from craton.sources.fetch import Fetcher

LOG = logging.getLogger(__name__)

OPENAPI_INFO = {
    "description": "Craton keeps a fleet's inventory — tenants, regions, hosts, groups, "
                   "variables, secrets and references — and serves it to Ansible.",
}


class IdConverter(IntegerConverter):
    """``<int:…>`` in routes: an id the databases can hold; a larger one matches no route
    (404) instead of overflowing the driver."""

    def __init__(self, url_map: Map, *args: Any, **kwargs: Any) -> None:
        super().__init__(url_map, min=0, max=MAX_ID)


class BoundChunkedBodies:
    """WSGI middleware: a chunked request body (no Content-Length) is read up to the limit and
    handed on with a Content-Length, so Flask's size check refuses an oversized one with 413
    instead of its stream silently stopping at the limit (a cut body could even parse)."""

    def __init__(self, app: Any, max_body_size: int) -> None:
        self.app = app
        self.max_body_size = max_body_size

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        if not environ.get("CONTENT_LENGTH") and "chunked" in environ.get(
                "HTTP_TRANSFER_ENCODING", "").lower():
            body = environ["wsgi.input"].read(self.max_body_size + 1)
            environ["wsgi.input"] = io.BytesIO(body)
            environ["CONTENT_LENGTH"] = str(len(body))
            environ.pop("HTTP_TRANSFER_ENCODING", None)
            environ.pop("wsgi.input_terminated", None)
        return self.app(environ, start_response)


PUBLIC_BLUEPRINTS = frozenset({"web", "api-docs"})
"""Served without credentials: the web pages (shells that read everything through /v1 with the
caller's own key) and the OpenAPI document (the same for every installation)."""

NOT_FROM_A_FORM = ("X-Craton-Request", "X-Auth-Token", "X-Craton-Tenant")
"""Headers a cross-site HTML form cannot send (nor a cross-origin script without a CORS
preflight, which Craton never allows): any of them, or a JSON body, or a Bearer credential, shows
a state-changing request was not forged by another site's page."""

SECURITY_HEADERS = {
    # The pages load their scripts, styles and icon from /ui/static and speak only to /v1.
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; "
                               "img-src 'self'; connect-src 'self'; object-src 'none'; "
                               "base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}


def check_not_forged() -> None:
    """Refuse a state-changing request that a page of another site could have sent (a form
    posting to /v1/jobs/1/cancel): it must show it came from a client that chose to call the
    API."""
    if request.method in SAFE_METHODS or request.is_json:
        return
    if any(name in request.headers for name in NOT_FROM_A_FORM):
        return
    if request.headers.get("Authorization", "").lower().startswith("bearer "):
        return
    raise Forbidden("a request that changes something needs a JSON body (Content-Type: "
                    "application/json) or the header X-Craton-Request: 1, which a form of "
                    "another site cannot send",
                    fields={"X-Craton-Request": "required on a request without a JSON body"})


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
        API_SPEC_OPTIONS={"info": OPENAPI_INFO, "security": [{"apiKey": []}, {"keystone": []}],
                          "components": {"securitySchemes": {
            "apiKey": {
                "type": "http", "scheme": "bearer", "bearerFormat": "craton_<key id>_<secret>",
                "description": "An API key ([api] auth_strategy = apikey), also accepted as "
                               "X-Auth-Token. Under noauth (development only) no credentials "
                               "are needed."},
            "keystone": {
                "type": "apiKey", "in": "header", "name": "X-Auth-Token",
                "description": "A Keystone token scoped to the project of a tenant, or to the "
                               "system ([api] auth_strategy = keystone)."}}}},
        MAX_CONTENT_LENGTH=settings.api.max_body_size,
        JSON_SORT_KEYS=False,
    )
    app.json.sort_keys = False
    db = database or Database(settings.database_url, pool_size=settings.database.pool_size,
                              pool_recycle=settings.database.pool_recycle,
                              echo=settings.database.echo)
    policy = Policy(settings.policy.file or None)
    secret_store = load_backend(settings)
    outbox.attach(db, secret_store)
    app.extensions["craton"] = Services(settings=settings, db=db, secrets=secret_store,
                                        fetcher=Fetcher(settings), policy=policy)
    strategy = make_strategy(settings, db)

    app.wsgi_app = BoundChunkedBodies(app.wsgi_app, settings.api.max_body_size)
    middleware = getattr(strategy, "middleware", None)
    if middleware is not None:
        app.wsgi_app = middleware(app.wsgi_app, settings)
    app.url_map.converters["int"] = IdConverter
    api = CratonApi(app)
    api.register_converter(IdConverter, lambda _: {"type": "integer", "minimum": 0})
    # Bodies parsed by hand (one host or a list of hosts) are documented by reference.
    api.spec.components.schema("HostCreate", schema=schemas.HostCreateSchema)
    for blueprint in BLUEPRINTS:
        api.register_blueprint(blueprint)
    web.register(app)

    @app.before_request
    def _authenticate() -> None:
        g.request_id = request.headers.get("X-Request-Id") or uuid.uuid4().hex
        if request.blueprint not in PUBLIC_BLUEPRINTS or isinstance(strategy, NoAuth):
            g.context = dataclasses.replace(strategy.authenticate(request, g.request_id),
                                            policy=policy)
        if request.content_length and not request.is_json:
            raise UnsupportedMediaType(
                "request bodies must be JSON (Content-Type: application/json)")
        check_not_forged()
        if request.content_length:
            g.json_body = parse_body(request.get_data(cache=True),
                                     settings.limits.max_json_depth)

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
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        return response

    @app.teardown_request
    def _close(_: BaseException | None) -> None:
        session = g.pop("db_session", None)
        if session is not None:
            session.close()

    return app
