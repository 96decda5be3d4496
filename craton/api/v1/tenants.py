"""/v1/tenants"""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from sqlalchemy.orm import selectinload

from craton.api.common import (
    Blueprint,
    check_if_match,
    context,
    db_session,
    not_modified,
    paginate,
    with_etag,
)
from craton.api.v1 import schemas
from craton.db.models import Tenant
from craton.db.scope import get_scoped, scoped_select
from craton.inventory import tenancy

LOADERS = (selectinload(Tenant.quota_rows),)
"""What a tenant's representation needs (its quotas), one query for a whole page."""

blp = Blueprint("tenants", __name__, url_prefix="/v1",
                description="Tenants: the customers whose regions Craton keeps. Creating, "
                            "renaming and deleting them needs a cloud admin.")


@blp.route("/tenants")
class Tenants(MethodView):
    @blp.arguments(schemas.PageArgs, location="query")
    @blp.response(200, schemas.TenantList)
    def get(self, args: dict[str, Any]) -> Any:
        """List the tenants the caller may see"""
        return paginate(scoped_select(context(), Tenant).options(*LOADERS), Tenant.id, args)

    @blp.arguments(schemas.TenantSchema)
    @blp.response(201, schemas.TenantSchema)
    def post(self, data: dict[str, Any]) -> Any:
        """Create a tenant"""
        tenant = tenancy.create_tenant(db_session(), context(), data)
        return with_etag(tenant, 201, Location=f"/v1/tenants/{tenant.id}")


@blp.route("/tenants/<int:tenant_id>")
class TenantItem(MethodView):
    @blp.response(200, schemas.TenantSchema)
    def get(self, tenant_id: int) -> Any:
        """Show a tenant"""
        tenant = get_scoped(db_session(), context(), Tenant, tenant_id, LOADERS)
        return not_modified(tenant) or with_etag(tenant)

    @blp.arguments(schemas.TenantPatchSchema)
    @blp.response(200, schemas.TenantSchema)
    def patch(self, data: dict[str, Any], tenant_id: int) -> Any:
        """Rename or describe a tenant, or set its quotas"""
        tenant = get_scoped(db_session(), context(), Tenant, tenant_id, LOADERS)
        check_if_match(tenant)
        return with_etag(tenancy.update_tenant(db_session(), context(), tenant, data))

    @blp.arguments(schemas.DeleteArgs, location="query")
    @blp.response(204)
    def delete(self, args: dict[str, Any], tenant_id: int) -> None:
        """Delete a tenant (with cascade=true, everything in it)"""
        tenant = get_scoped(db_session(), context(), Tenant, tenant_id)
        check_if_match(tenant)
        tenancy.delete_tenant(db_session(), context(), tenant, cascade=args["cascade"])
