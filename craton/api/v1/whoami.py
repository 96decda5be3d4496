"""/v1/whoami: the caller, its tenant and the permissions the policy grants it — what the web
pages show as "signed in as" and use to offer only the actions the caller may take."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from sqlalchemy import select

from craton.api.common import Blueprint, context, db_session
from craton.api.v1 import schemas
from craton.context import Action, RequestContext
from craton.db.models import Tenant
from craton.db.scope import tenant_clause

blp = Blueprint("whoami", __name__, url_prefix="/v1",
                description="Who the caller is: user, tenant, roles and permissions.")


def describe_caller(ctx: RequestContext) -> dict[str, Any]:
    """``ctx`` as the API shows it. Its tenant's name is read through the tenant scope (the
    caller's own tenant, nothing else), without needing inventory:read: a caller may always
    learn where it acts."""
    tenant = None
    if ctx.tenant_id is not None:
        name = db_session().scalar(
            select(Tenant.name).where(tenant_clause(Tenant, ctx.tenant_id)))
        tenant = {"id": ctx.tenant_id, "name": name}
    return {
        "user": ctx.user, "tenant": tenant, "cloud_admin": ctx.is_admin,
        "roles": sorted(ctx.roles), "auth_strategy": ctx.auth_strategy,
        "api_key_name": ctx.api_key_name,
        "permissions": sorted(action.value for action in Action if ctx.can(action)),
    }


@blp.route("/whoami")
class WhoAmI(MethodView):
    @blp.response(200, schemas.WhoAmISchema)
    def get(self) -> Any:
        """Show who the caller is, in which tenant, and the permissions it holds"""
        ctx = context()
        ctx.require(Action.SHOW_IDENTITY)
        return describe_caller(ctx), 200, {"Cache-Control": "no-store"}
