"""One JSON error shape for every failure, mapped in this one place:

    {"error": {"code": 422, "message": "name: must not be empty",
               "fields": {"name": "must not be empty"}, "request_id": "…"}}

Validation errors name each field by its path (``name``, ``3.groups``, ``variables.role``,
``limit``); nothing a caller sent is echoed back except names and ids, so secret content can
never reach an error body.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from flask import Flask, Response, g, jsonify, request
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm.exc import StaleDataError
from werkzeug.exceptions import HTTPException

from craton.errors import CratonError, summarize

LOG = logging.getLogger(__name__)


def error_response(code: int, message: str, fields: Mapping[str, str] | None = None,
                   headers: Mapping[str, str] | None = None) -> Response:
    body: dict[str, Any] = {"code": code, "message": message}
    if fields:
        body["fields"] = dict(fields)
    body["request_id"] = g.get("request_id", "-")
    response = jsonify({"error": body})
    response.status_code = code
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def flatten_messages(messages: Any, prefix: str = "") -> dict[str, str]:
    """marshmallow/webargs nest errors by location and field ({"json": {"3": {"name": [...]}}});
    callers want one flat map of field path → reason."""
    flat: dict[str, str] = {}
    if isinstance(messages, Mapping):
        for key, value in messages.items():
            if not prefix and key in ("json", "query", "form", "headers", "path", "files"):
                flat.update(flatten_messages(value, ""))
                continue
            name = "" if key == "_schema" else str(key)
            path = f"{prefix}.{name}" if prefix and name else (name or prefix or "body")
            flat.update(flatten_messages(value, path))
    elif isinstance(messages, list | tuple):
        if all(isinstance(item, str) for item in messages):
            flat[prefix or "body"] = " ".join(messages)
        else:
            for item in messages:
                flat.update(flatten_messages(item, prefix))
    else:
        flat[prefix or "body"] = str(messages)
    return flat


def handle_craton_error(error: CratonError) -> Response:
    if error.status >= 500:
        LOG.error("request %s failed: %s", g.get("request_id", "-"), error.message)
    return error_response(error.status, error.message, error.fields, error.headers)


def handle_http_exception(error: HTTPException) -> Response:
    data = getattr(error, "data", None) or {}
    code = error.code or 500
    messages = data.get("errors") or data.get("messages")
    if messages:
        fields = flatten_messages(messages)
        return error_response(code, summarize(fields), fields, data.get("headers"))
    message = data.get("message") or error.description or error.name
    if code == 413:
        message = "request body is larger than the configured limit ([api] max_body_size)"
    elif code == 404:
        message = f"no such resource: {request.path}"
    if code >= 500:
        LOG.error("request %s failed: %s", g.get("request_id", "-"), message)
    headers = dict(error.get_headers()) if code == 405 else None
    if headers:
        headers.pop("Content-Type", None)
    return error_response(code, message, headers=headers)


def handle_stale(_: StaleDataError) -> Response:
    return error_response(409, "the object was changed by another request meanwhile; "
                               "read it again and retry")


def handle_database_error(error: DBAPIError) -> Response:
    if isinstance(error, OperationalError) and "locked" in str(error.orig).lower():
        return error_response(503, "the database is busy; retry shortly",
                              headers={"Retry-After": "1"})
    LOG.exception("request %s: database error", g.get("request_id", "-"))
    return error_response(500, "internal database error; see the server log for request "
                               f"{g.get('request_id', '-')}")


def handle_unexpected(error: Exception) -> Response:
    if isinstance(error, HTTPException):
        return handle_http_exception(error)
    LOG.exception("request %s: unexpected error", g.get("request_id", "-"))
    return error_response(500, "internal error; see the server log for request "
                               f"{g.get('request_id', '-')}")


def register(app: Flask) -> None:
    app.register_error_handler(CratonError, handle_craton_error)
    app.register_error_handler(HTTPException, handle_http_exception)
    app.register_error_handler(StaleDataError, handle_stale)
    app.register_error_handler(DBAPIError, handle_database_error)
    app.register_error_handler(Exception, handle_unexpected)
