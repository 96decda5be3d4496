"""Who is asking: the request context every query runs in.

The auth layer (``craton.api.auth``) builds one per request; domain code receives it explicitly
and scopes every query with it. A context scoped to a tenant sees only that tenant's objects.
"""

from __future__ import annotations

import dataclasses
import enum

from craton.errors import Forbidden


class Action(enum.StrEnum):
    READ = "inventory:read"
    WRITE = "inventory:write"
    REVEAL_SECRETS = "secrets:reveal"
    MANAGE_TENANTS = "tenants:manage"
    MANAGE_API_KEYS = "apikeys:manage"


# Which roles allow what, inside the caller's own tenant. A cloud admin (is_admin) may do
# everything in every tenant.
POLICY: dict[Action, frozenset[str]] = {
    Action.READ: frozenset({"reader", "member", "admin", "secret-reader"}),
    Action.WRITE: frozenset({"member", "admin"}),
    Action.REVEAL_SECRETS: frozenset({"admin", "secret-reader"}),
    Action.MANAGE_TENANTS: frozenset(),
    Action.MANAGE_API_KEYS: frozenset({"admin"}),
}


@dataclasses.dataclass(frozen=True)
class RequestContext:
    tenant_id: int | None
    """The tenant the caller is scoped to; None only for a cloud admin acting across tenants."""
    user: str = "anonymous"
    roles: frozenset[str] = frozenset()
    is_admin: bool = False
    request_id: str = "-"
    auth_strategy: str = "internal"
    """How the caller was authenticated (noauth, apikey, …); internal for Craton's own tools."""
    api_key_name: str | None = None
    """The name of the API key the caller presented, if it presented one."""

    def can(self, action: Action) -> bool:
        return self.is_admin or bool(self.roles & POLICY[action])

    def require(self, action: Action) -> None:
        if not self.can(action):
            raise Forbidden(f"the caller's roles do not allow {action.value}")


ADMIN = RequestContext(tenant_id=None, user="admin", roles=frozenset({"admin"}), is_admin=True)
"""The context of operator tooling (craton-manage, the demo loader)."""
