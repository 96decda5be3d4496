"""What every resource uses: the request's session and context, ETags and If-Match, keyset
pages, and JSON bodies validated with the error shape of ``craton.api.errors``."""

from __future__ import annotations

import dataclasses
import unicodedata
from collections.abc import Callable, Sequence
from typing import Any, TypeVar
from urllib.parse import urlencode

import flask_smorest
import marshmallow as ma
from flask import Request, Response, current_app, g, request
from marshmallow.utils import missing
from sqlalchemy import Select
from sqlalchemy.orm import Session
from webargs.flaskparser import FlaskParser
from werkzeug.http import unquote_etag

from craton.api.errors import flatten_messages
from craton.config import Settings
from craton.context import RequestContext
from craton.db import changes
from craton.db.session import Database
from craton.errors import BadRequest, PreconditionFailed, invalid
from craton.jobs.engine import JobSystem
from craton.policy import Policy
from craton.secrets.backends import SecretBackend
from craton.sources.fetch import Fetcher

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
REASON_HEADER = "X-Craton-Reason"
M = TypeVar("M")


class ArgumentsParser(FlaskParser):
    """webargs' parser, reading a JSON body as ``craton.api.bodies`` parsed and checked it
    (once, before the view) rather than parsing it again without those checks."""

    def load_json(self, req: Request, schema: ma.Schema) -> Any:
        return g.get("json_body", missing)


class Blueprint(flask_smorest.Blueprint):
    """flask-smorest's Blueprint, refusing unknown query arguments as the schemas refuse unknown
    body fields: a mistyped filter (``?stat=ready``) must not silently select everything."""

    ARGUMENTS_PARSER = ArgumentsParser(unknown=None)


@dataclasses.dataclass
class Services:
    """What the app factory builds once and every request shares."""

    settings: Settings
    db: Database
    secrets: SecretBackend
    fetcher: Fetcher
    policy: Policy
    """The app's rules: one oslo.policy Enforcer, built at start-up."""
    _jobs: JobSystem | None = None

    @property
    def jobs(self) -> JobSystem:
        """The job engine, started on first use (apps that never run a job start no threads)."""
        if self._jobs is None:
            self._jobs = JobSystem(self.settings, self.db, self.secrets, self.fetcher,
                                   self.policy)
        return self._jobs

    def close(self) -> None:
        if self._jobs is not None:
            self._jobs.close()
            self._jobs = None


def services() -> Services:
    return current_app.extensions["craton"]


def db_session() -> Session:
    """The request's session: writes start an IMMEDIATE transaction on SQLite; the app commits
    it after a successful response and rolls it back otherwise. A write session's changes are
    recorded as the caller's, with the request's id and reason (``craton.db.changes``)."""
    if "db_session" not in g:
        write = request.method not in SAFE_METHODS
        actor = request_actor() if write else None
        session = services().db.new_session(write=write)
        if actor is not None:
            changes.attribute(session, actor)
        g.db_session = session
    return g.db_session


def request_actor() -> changes.Actor:
    """Who this request's writes are recorded as."""
    ctx = context()
    return changes.Actor(user=ctx.user, tenant_id=ctx.tenant_id,
                         auth_strategy=ctx.auth_strategy, api_key_name=ctx.api_key_name,
                         request_id=g.get("request_id"), reason=request_reason())


def request_reason() -> str | None:
    """The ``X-Craton-Reason`` header: why the caller makes this change, kept in its change
    records. UTF-8 (as a client sends it), at most ``changes.REASON_LENGTH`` characters, no
    control or format characters; empty is none. A 400 naming the header otherwise."""
    raw = request.headers.get(REASON_HEADER)
    if raw is None:
        return None
    try:
        text = raw.encode("latin-1").decode("utf-8").strip()
    except UnicodeError:
        text, problem = "", "must be UTF-8 text"
    else:
        problem = None
    if len(text) > changes.REASON_LENGTH:
        problem = f"must be at most {changes.REASON_LENGTH} characters"
    elif any(unicodedata.category(ch).startswith("C") for ch in text):
        problem = "must not contain control or format characters"
    if problem is not None:
        raise BadRequest(f"{REASON_HEADER} {problem}", fields={REASON_HEADER: problem})
    return text or None


def release_session() -> None:
    """End the request's (read) session now, for a response that outlives the request — a
    stream must not hold a database connection while it waits."""
    session = g.pop("db_session", None)
    if session is not None:
        session.close()


def context() -> RequestContext:
    return g.context


# --- ETags -------------------------------------------------------------------------------------

def etag_of(obj: Any) -> str:
    """Strong ETag from the row's version (which moves on with every change)."""
    return f'"{obj.version}"'


def _opaque(etag: str) -> str:
    """The opaque part of one of our (strong, quoted) ETags, as werkzeug compares them."""
    return unquote_etag(etag)[0] or ""


def check_if_match(obj: Any) -> None:
    """Refuse a write whose If-Match names a version that is no longer current (412). As
    RFC 9110 has it, If-Match compares strongly: a weak tag never matches."""
    header = request.headers.get("If-Match")
    if header is None:
        return
    if not request.if_match.contains(_opaque(etag_of(obj))):
        raise PreconditionFailed(
            f"If-Match {header} does not match the current version {etag_of(obj)}",
            fields={"If-Match": f"current version is {etag_of(obj)}"},
        )


def not_modified(obj: Any) -> Response | None:
    """A 304 when If-None-Match already names the current version."""
    return not_modified_etag(etag_of(obj))


def not_modified_etag(etag: str) -> Response | None:
    """A 304 when If-None-Match names ``etag`` or is ``*`` (weak comparison, RFC 9110)."""
    if request.if_none_match.contains_weak(_opaque(etag)):
        return Response(status=304, headers={"ETag": etag})
    return None


def with_etag(obj: Any, status: int = 200, **headers: str) -> tuple[Any, int, dict[str, str]]:
    return obj, status, {"ETag": etag_of(obj), **headers}


# --- Pages -------------------------------------------------------------------------------------

@dataclasses.dataclass
class Page:
    items: Sequence[Any]
    next: str | None


def page_size(limit: int | None) -> int:
    api = services().settings.api
    return min(limit or api.default_page_size, api.max_page_size)


def paginate(stmt: Select[tuple[M]], id_column: Any, args: dict[str, Any], *,
             newest_first: bool = False, key: str = "id",
             load: Callable[[Select[tuple[M]]], Sequence[Any]] | None = None) -> Page:
    """Keyset pagination: ``marker`` is the last key seen, so pages stay stable while rows are
    added, and page N costs what page 1 costs. ``load`` reads the page's statement (the ORM
    objects it selects by default)."""
    limit = page_size(args.get("limit"))
    if args.get("marker") is not None:
        stmt = stmt.where(id_column < args["marker"] if newest_first
                          else id_column > args["marker"])
    order = id_column.desc() if newest_first else id_column
    stmt = stmt.order_by(None).order_by(order).limit(limit + 1)
    rows = list(load(stmt) if load is not None else db_session().scalars(stmt))
    more = len(rows) > limit
    items = rows[:limit]
    return Page(items=items, next=next_link(getattr(items[-1], key)) if more else None)


def next_link(last: int | str, param: str = "marker") -> str:
    """This request's URL with ``param`` moved on to ``last``."""
    query = request.args.copy()
    query[param] = str(last)
    return f"{request.base_url}?{urlencode(list(query.items(multi=True)))}"


# --- Bodies ------------------------------------------------------------------------------------

def json_body() -> Any:
    """The parsed JSON body (see ``craton.api.bodies``), or a 400 saying why there is none."""
    if not request.is_json:
        raise BadRequest("request body must be JSON (Content-Type: application/json)",
                         fields={"body": "must be JSON"})
    if "json_body" not in g:
        raise BadRequest("request body is not valid JSON", fields={"body": "not valid JSON"})
    return g.json_body


def load(schema: ma.Schema, data: Any) -> Any:
    """Validate ``data`` with ``schema``; a 422 naming every bad field otherwise."""
    try:
        return schema.load(data)
    except ma.ValidationError as error:
        raise invalid(flatten_messages(error.messages)) from None
