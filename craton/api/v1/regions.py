"""/v1/regions and /v1/tenants/{id}/regions"""

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
    services,
    with_etag,
)
from craton.api.v1 import schemas
from craton.api.v1.variables import register_variables
from craton.context import Action
from craton.db.models import Region, Tenant
from craton.db.scope import get_scoped, scoped_select
from craton.inventory import importer, tenancy
from craton.names import check, slug_problem

blp = Blueprint("regions", __name__, url_prefix="/v1",
                description="Regions of a tenant. Their variables are Ansible's `all` group.")

LOADERS = (selectinload(Region.variable_rows),)


def _list(args: dict[str, Any], tenant_id: int | None) -> Any:
    stmt = scoped_select(context(), Region).options(*LOADERS)
    if tenant_id is not None:
        stmt = stmt.where(Region.tenant_id == tenant_id)
    if args.get("name") is not None:
        check("name", slug_problem(args["name"]))
        stmt = stmt.where(Region.name == args["name"])
    return paginate(stmt, Region.id, args)


@blp.route("/regions")
class Regions(MethodView):
    @blp.arguments(schemas.RegionListArgs, location="query")
    @blp.response(200, schemas.RegionList)
    def get(self, args: dict[str, Any]) -> Any:
        """List regions (optionally of one tenant)"""
        return _list(args, args.get("tenant_id"))


@blp.route("/tenants/<int:tenant_id>/regions")
class TenantRegions(MethodView):
    @blp.arguments(schemas.PageArgs, location="query")
    @blp.response(200, schemas.RegionList)
    def get(self, args: dict[str, Any], tenant_id: int) -> Any:
        """List a tenant's regions"""
        tenant = get_scoped(db_session(), context(), Tenant, tenant_id)
        return _list(args, tenant.id)

    @blp.arguments(schemas.RegionSchema)
    @blp.response(201, schemas.RegionSchema)
    def post(self, data: dict[str, Any], tenant_id: int) -> Any:
        """Create a region in a tenant"""
        region = tenancy.create_region(db_session(), context(), tenant_id, data,
                                       limits=services().settings.limits,
                                             sealer=services().secrets)
        return with_etag(region, 201, Location=f"/v1/regions/{region.id}")


@blp.route("/regions/<int:region_id>")
class RegionItem(MethodView):
    @blp.response(200, schemas.RegionSchema)
    def get(self, region_id: int) -> Any:
        """Show a region"""
        region = get_scoped(db_session(), context(), Region, region_id, LOADERS)
        return not_modified(region) or with_etag(region)

    @blp.arguments(schemas.RegionPatchSchema)
    @blp.response(200, schemas.RegionSchema)
    def patch(self, data: dict[str, Any], region_id: int) -> Any:
        """Rename, describe or merge variables into a region"""
        region = get_scoped(db_session(), context(), Region, region_id, LOADERS)
        check_if_match(region)
        return with_etag(tenancy.update_region(db_session(), context(), region, data,
                                                   limits=services().settings.limits,
                                             sealer=services().secrets))

    @blp.arguments(schemas.DeleteArgs, location="query")
    @blp.response(204)
    def delete(self, args: dict[str, Any], region_id: int) -> None:
        """Delete a region (with cascade=true, with its hosts and groups)"""
        region = get_scoped(db_session(), context(), Region, region_id)
        check_if_match(region)
        tenancy.delete_region(db_session(), context(), region, cascade=args["cascade"])


@blp.route("/regions/<int:region_id>/import")
class RegionImport(MethodView):
    @blp.arguments(schemas.ImportSchema)
    @blp.arguments(schemas.ImportArgs, location="query")
    @blp.response(200, schemas.ImportPlanSchema)
    @blp.doc(responses={"429": schemas.quota_response("hosts or groups")})
    def post(self, data: dict[str, Any], args: dict[str, Any], region_id: int) -> Any:
        """Import an Ansible inventory (INI, YAML, dynamic-inventory JSON or a directory with
        group_vars/host_vars), read by Ansible's own loader, in one transaction; with
        dry_run=true, only the plan"""
        region = get_scoped(db_session(), context(), Region, region_id, LOADERS)
        context().require(Action.WRITE)
        files = importer.inventory_files(data["format"], data.get("content"), data.get("files"))
        parsed = importer.parse_inventory(files)
        settings = services().settings
        plan = importer.import_inventory(db_session(), context(), region, parsed,
                                         dry_run=args["dry_run"], limits=settings.limits,
                                         quotas=settings.quotas, sealer=services().secrets)
        return plan.as_dict()


register_variables(blp, Region, "regions", "region_id")
