"""Who is asking: the request context every query runs in.

The auth layer (``craton.api.auth``) builds one per request; domain code receives it explicitly,
scopes every query with it and asks it whether the caller may do something, which the policy
(``craton.policy``: oslo.policy rules, overridable by a policy.yaml) decides from its roles. A
context scoped to a tenant sees only that tenant's objects.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

from craton.errors import Forbidden
from craton.policy import Action, Policy, default_policy

__all__ = ["ADMIN", "Action", "RequestContext"]


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
    policy: Policy | None = dataclasses.field(default=None, compare=False, repr=False)
    """The rules the context's checks are decided by: the app's (with its policy.yaml) for a
    request; None for the documented defaults (operator tooling, the demo loader)."""

    @functools.cached_property
    def credentials(self) -> dict[str, Any]:
        """What oslo.policy's checks read (``role:…``, ``is_admin:True``, ``tenant_id:…``)."""
        return {"roles": sorted(self.roles), "is_admin": self.is_admin,
                "tenant_id": self.tenant_id, "project_id": self.tenant_id,
                "user": self.user}

    def can(self, action: Action) -> bool:
        return (self.policy or default_policy()).allows(action, self.credentials)

    def require(self, action: Action) -> None:
        if not self.can(action):
            raise Forbidden(f"the caller's roles do not allow {action.value}")


ADMIN = RequestContext(tenant_id=None, user="admin", roles=frozenset({"admin"}), is_admin=True)
"""The context of operator tooling (craton-manage, the demo loader)."""
