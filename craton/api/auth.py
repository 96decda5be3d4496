"""Who is calling: a pluggable strategy turns a request into a ``RequestContext``.

A strategy is any object with ``authenticate(request, request_id) -> RequestContext`` (raising
``Unauthorized``); resources never look at credentials themselves. ``noauth`` is the embedded
default. A Keystone strategy will read the identity headers set by keystonemiddleware's
auth_token filter wrapped around the WSGI app (X-Project-Id, X-Roles, …); an API-key strategy
will look its header up in the database. Neither needs a change to any resource.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Protocol

from flask import Request

from craton.config import Settings
from craton.context import RequestContext
from craton.db.models import MAX_ID
from craton.errors import BadRequest

TENANT_HEADER = "X-Craton-Tenant"
TENANT_ID = re.compile(r"[0-9]{1,19}")
ROLES_HEADER = "X-Craton-Roles"
USER_HEADER = "X-Craton-User"


class AuthStrategy(Protocol):
    def authenticate(self, request: Request, request_id: str) -> RequestContext: ...


class NoAuth:
    """Trust the caller (for 127.0.0.1 only): a cloud admin, unless ``X-Craton-Tenant: <id>``
    scopes the request to that tenant, with the roles in ``X-Craton-Roles`` (comma-separated;
    default ``member``)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def authenticate(self, request: Request, request_id: str) -> RequestContext:
        user = request.headers.get(USER_HEADER, "noauth")
        raw = request.headers.get(TENANT_HEADER)
        if raw is None:
            return RequestContext(tenant_id=None, user=user, roles=frozenset({"admin"}),
                                  is_admin=True, request_id=request_id)
        if not TENANT_ID.fullmatch(raw.strip()) or not 1 <= int(raw) <= MAX_ID:
            raise BadRequest(f"{TENANT_HEADER} must be a tenant id (an integer)",
                             fields={TENANT_HEADER: "must be a tenant id (an integer)"})
        roles = frozenset(
            role.strip() for role in request.headers.get(ROLES_HEADER, "member").split(",")
            if role.strip()
        )
        return RequestContext(tenant_id=int(raw), user=user, roles=roles, is_admin=False,
                              request_id=request_id)


STRATEGIES: dict[str, Callable[[Settings], AuthStrategy]] = {"noauth": NoAuth}


def make_strategy(settings: Settings) -> AuthStrategy:
    try:
        factory = STRATEGIES[settings.api.auth_strategy]
    except KeyError:
        raise ValueError(f"[api] auth_strategy: unknown strategy "
                         f"{settings.api.auth_strategy!r}; known: {', '.join(STRATEGIES)}"
                         ) from None
    return factory(settings)
