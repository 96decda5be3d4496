"""Who is calling: a pluggable strategy turns a request into a ``RequestContext``.

A strategy is any object with ``authenticate(request, request_id) -> RequestContext`` (raising
``Unauthorized`` or ``Forbidden``); resources never look at credentials themselves.

- ``noauth`` (development, the embedded default): no credentials. Only served on a loopback
  address (craton-api refuses otherwise), and only to requests whose ``Host`` is a loopback
  name, so a web page on another site cannot reach it through DNS rebinding.
- ``apikey``: ``Authorization: Bearer <key>`` (or ``X-Auth-Token: <key>``), looked up in the
  database (``craton.identity.apikeys``).

- ``keystone``: a Keystone token (``X-Auth-Token``), checked by keystonemiddleware's auth_token
  wrapped around the WSGI app (``craton.identity.keystone``); the strategy reads the identity
  auth_token validated (project, roles, system scope).
"""

from __future__ import annotations

import ipaddress
import logging
import re
from collections.abc import Callable
from typing import Protocol

from flask import Request
from sqlalchemy.exc import OperationalError

from craton.config import Settings
from craton.context import RequestContext
from craton.db.models import MAX_ID
from craton.db.session import Database
from craton.errors import BadRequest, Forbidden, Unauthorized
from craton.identity import apikeys, keystone

LOG = logging.getLogger(__name__)
TENANT_HEADER = "X-Craton-Tenant"
TENANT_ID = re.compile(r"[0-9]{1,19}")
ROLES_HEADER = "X-Craton-Roles"
USER_HEADER = "X-Craton-User"


class AuthStrategy(Protocol):
    def authenticate(self, request: Request, request_id: str) -> RequestContext: ...


def is_loopback(host: str) -> bool:
    """``host`` (a name or an address, IPv6 with or without brackets) is this machine."""
    host = host.strip().lower().removeprefix("[").removesuffix("]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def host_name(host_header: str) -> str:
    """The name or address of a Host header, without its port (``[::1]:7780`` → ``::1``)."""
    if host_header.startswith("["):
        return host_header[1:].partition("]")[0]
    return host_header.rpartition(":")[0] if host_header.count(":") == 1 else host_header


class NoAuth:
    """Trust the caller (on loopback only): a cloud admin, unless ``X-Craton-Tenant: <id>``
    scopes the request to that tenant, with the roles in ``X-Craton-Roles`` (comma-separated;
    default ``member``). A request whose Host is not a loopback name is refused (403): a page
    of another site that rebinds its own name to 127.0.0.1 sends its own name as Host."""

    def __init__(self, settings: Settings, database: Database) -> None:
        self.settings = settings

    def authenticate(self, request: Request, request_id: str) -> RequestContext:
        if not is_loopback(host_name(request.host)):
            raise Forbidden("noauth serves only requests to a loopback name (localhost, "
                            "127.0.0.1, [::1]); this one was sent to another Host")
        user = request.headers.get(USER_HEADER, "noauth")
        raw = request.headers.get(TENANT_HEADER)
        if raw is None:
            return RequestContext(tenant_id=None, user=user, roles=frozenset({"admin"}),
                                  is_admin=True, request_id=request_id, auth_strategy="noauth")
        if not TENANT_ID.fullmatch(raw.strip()) or not 1 <= int(raw) <= MAX_ID:
            raise BadRequest(f"{TENANT_HEADER} must be a tenant id (an integer)",
                             fields={TENANT_HEADER: "must be a tenant id (an integer)"})
        roles = frozenset(
            role.strip() for role in request.headers.get(ROLES_HEADER, "member").split(",")
            if role.strip()
        )
        return RequestContext(tenant_id=int(raw), user=user, roles=roles, is_admin=False,
                              request_id=request_id, auth_strategy="noauth")


def presented_key(request: Request) -> str | None:
    """The credential the request carries: ``Authorization: Bearer <key>`` or
    ``X-Auth-Token: <key>``."""
    authorization = request.headers.get("Authorization")
    if authorization is not None:
        scheme, _, credential = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not credential.strip():
            raise Unauthorized("the Authorization header must be: Bearer <API key>",
                               headers={"WWW-Authenticate": apikeys.CHALLENGE})
        return credential.strip()
    token = request.headers.get("X-Auth-Token")
    return token.strip() if token is not None else None


class ApiKeyAuth:
    """API keys (``craton.identity.apikeys``): one indexed lookup per request, on a pooled
    connection of its own, before the request's session starts; the ``last_used_at`` write
    (once a minute per key) takes a short write transaction of its own, so it never waits on
    the request's."""

    def __init__(self, settings: Settings, database: Database) -> None:
        self.database = database
        self.hash_key = apikeys.read_or_create_hash_key(settings.apikey_hash_key_file)

    def authenticate(self, request: Request, request_id: str) -> RequestContext:
        key = presented_key(request)
        if key is None:
            raise Unauthorized("authentication required: send Authorization: Bearer <API key>",
                               headers={"WWW-Authenticate": apikeys.CHALLENGE})
        with self.database.connection(write=False) as connection:
            holder = apikeys.check_key(connection, self.hash_key, key)
        if holder.used_at_stale:
            try:
                with self.database.connection() as connection:
                    apikeys.mark_used(connection, holder)
            except OperationalError as error:
                # A busy database delays a bookkeeping time; it must not refuse the request.
                LOG.warning("request %s: could not record the use of API key %s: %s",
                            request_id, holder.id, error.orig)
        user = f"{holder.name} (API key {holder.id})"
        if holder.tenant_id is None:
            return RequestContext(tenant_id=None, user=user, roles=frozenset({"admin"}),
                                  is_admin=True, request_id=request_id,
                                  auth_strategy="apikey", api_key_name=holder.name)
        return RequestContext(tenant_id=holder.tenant_id, user=user,
                              roles=frozenset({holder.role.value}), request_id=request_id,
                              auth_strategy="apikey", api_key_name=holder.name)


class KeystoneAuth:
    """A Keystone token: a system-scoped one with ``[keystone] cloud_admin_role`` (or that role
    on ``admin_project_id``) is a cloud admin; a project-scoped one acts in the tenant that
    records the project, with the Craton roles its Keystone roles map to.

    The identity is read from what auth_token validated — the token data it leaves in the
    environ (``keystone.token_auth``), which its X-Project-Id, X-Roles, … headers are copied
    from — not from the headers themselves: auth_token removes those from what the caller
    sent, but not ``OpenStack-System-Scope``, which a caller could send with a project token.
    The token itself is never read here, so it cannot reach a log or an error."""

    middleware = staticmethod(keystone.wrap)
    """What create_app wraps the WSGI app in: auth_token, which validates the token."""

    def __init__(self, settings: Settings, database: Database) -> None:
        self.settings = settings.keystone
        self.database = database
        self.tenants = keystone.ProjectTenants(database)
        self.challenge = {"WWW-Authenticate": keystone.challenge(settings)}

    def authenticate(self, request: Request, request_id: str) -> RequestContext:
        token_auth = request.environ.get("keystone.token_auth")
        if token_auth is None:
            raise RuntimeError("KeystoneAuth needs keystonemiddleware's auth_token around the app")
        if request.headers.get("X-Identity-Status") != "Confirmed" \
                or not token_auth.has_user_token:
            message = ("authentication required: send a Keystone token as X-Auth-Token"
                       if "X-Auth-Token" not in request.headers else
                       "the Keystone token is not valid (expired, revoked or unknown to Keystone)")
            raise Unauthorized(message, headers=self.challenge)
        token = token_auth.user
        keystone_roles = frozenset(token.role_names)
        user = f"{token.username} (Keystone user {token.user_id})"
        admin_role = self.settings.cloud_admin_role
        if token.system_scoped:
            if admin_role not in keystone_roles:
                raise Forbidden(f"a system-scoped token is a cloud admin only with the Keystone "
                                f"role {admin_role!r}; scope the token to a project to act in "
                                "its tenant")
            return RequestContext(tenant_id=None, user=user, roles=frozenset({"admin"}),
                                  is_admin=True, request_id=request_id,
                                  auth_strategy="keystone")
        project_id = token.project_id
        if not project_id:
            raise Forbidden("the token is not scoped to a project: scope it to the project of "
                            "the tenant to act in (or to the system, as a cloud admin)")
        if project_id == self.settings.admin_project_id and admin_role in keystone_roles:
            return RequestContext(tenant_id=None, user=user, roles=frozenset({"admin"}),
                                  is_admin=True, request_id=request_id,
                                  auth_strategy="keystone")
        roles = keystone.craton_roles(self.settings, keystone_roles)
        if not roles:
            raise Forbidden(f"none of the token's roles on Keystone project {project_id} gives "
                            "a Craton role ([keystone] role_map)")
        tenant_id = self.tenants.get(project_id)
        if tenant_id is None and self.settings.auto_create_tenants:
            tenant_id = keystone.create_tenant_for_project(
                self.database, project_id, token.project_name or project_id)
        if tenant_id is None:
            raise Forbidden(f"Keystone project {project_id} has no Craton tenant: a cloud admin "
                            "creates it (POST /v1/tenants with keystone_project_id, or "
                            "craton-manage tenant create --keystone-project)")
        return RequestContext(tenant_id=tenant_id, user=user, roles=roles, request_id=request_id,
                              auth_strategy="keystone")


STRATEGIES: dict[str, Callable[[Settings, Database], AuthStrategy]] = {
    "noauth": NoAuth, "apikey": ApiKeyAuth, "keystone": KeystoneAuth}


def make_strategy(settings: Settings, database: Database) -> AuthStrategy:
    try:
        factory = STRATEGIES[settings.api.auth_strategy]
    except KeyError:
        raise ValueError(f"[api] auth_strategy: unknown strategy "
                         f"{settings.api.auth_strategy!r}; known: {', '.join(STRATEGIES)}"
                         ) from None
    return factory(settings, database)
