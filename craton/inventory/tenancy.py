"""Tenants and their regions."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from craton.config import LimitSettings
from craton.context import Action, RequestContext
from craton.db.models import Group, Host, Region, Tenant
from craton.db.scope import get_scoped
from craton.db.util import flush_or_conflict
from craton.errors import Conflict
from craton.inventory.quotas import set_quotas
from craton.inventory.variables import Sealer, merge_variables, replace_variables
from craton.names import check, keystone_id_problem, slug_problem, tenant_name_problem
from craton.values import utcnow


def create_tenant(session: Session, ctx: RequestContext, data: Mapping[str, Any]) -> Tenant:
    ctx.require(Action.MANAGE_TENANTS)
    name = data["name"]
    check("name", tenant_name_problem(name))
    _ensure_unique(session, select(Tenant.id).where(Tenant.name == name), f"tenant {name!r}")
    tenant = Tenant(name=name, description=data.get("description"))
    _set_keystone_project(session, tenant, data.get("keystone_project_id"))
    set_quotas(session, tenant, data.get("quotas") or {})
    session.add(tenant)
    flush_or_conflict(session, f"tenant {name!r} already exists", {"name": "already exists"})
    return tenant


def update_tenant(session: Session, ctx: RequestContext, tenant: Tenant,
                  data: Mapping[str, Any]) -> Tenant:
    ctx.require(Action.MANAGE_TENANTS)
    if "name" in data and data["name"] != tenant.name:
        check("name", tenant_name_problem(data["name"]))
        _ensure_unique(session, select(Tenant.id).where(Tenant.name == data["name"]),
                       f"tenant {data['name']!r}")
        tenant.name = data["name"]
    if "description" in data:
        tenant.description = data["description"]
    if "keystone_project_id" in data:
        _set_keystone_project(session, tenant, data["keystone_project_id"])
    if set_quotas(session, tenant, data.get("quotas") or {}):
        tenant.updated_at = utcnow()
    flush_or_conflict(session, f"tenant {tenant.name!r} already exists", {"name": "already exists"})
    return tenant


def delete_tenant(session: Session, ctx: RequestContext, tenant: Tenant, *,
                  cascade: bool = False) -> None:
    ctx.require(Action.MANAGE_TENANTS)
    if not cascade:
        regions = session.scalar(
            select(func.count()).select_from(Region).where(Region.tenant_id == tenant.id)
        )
        if regions:
            raise Conflict(f"tenant {tenant.id} still has {regions} region(s); delete them "
                           "first or pass cascade=true")
    session.delete(tenant)
    session.flush()


def create_region(session: Session, ctx: RequestContext, tenant_id: int,
                  data: Mapping[str, Any], *, limits: LimitSettings,
                  sealer: Sealer) -> Region:
    ctx.require(Action.WRITE)
    tenant = get_scoped(session, ctx, Tenant, tenant_id)
    name = data["name"]
    check("name", slug_problem(name))
    _ensure_unique(
        session, select(Region.id).where(Region.tenant_id == tenant.id, Region.name == name),
        f"region {name!r} in tenant {tenant.id}",
    )
    region = Region(tenant_id=tenant.id, name=name, description=data.get("description"))
    replace_variables(region, data.get("variables") or {}, limits, sealer)
    session.add(region)
    flush_or_conflict(session, f"region {name!r} already exists in tenant {tenant.id}",
                      {"name": "already exists"})
    return region


def update_region(session: Session, ctx: RequestContext, region: Region,
                  data: Mapping[str, Any], *, limits: LimitSettings,
                  sealer: Sealer) -> Region:
    ctx.require(Action.WRITE)
    if "name" in data and data["name"] != region.name:
        check("name", slug_problem(data["name"]))
        _ensure_unique(
            session,
            select(Region.id).where(Region.tenant_id == region.tenant_id,
                                    Region.name == data["name"]),
            f"region {data['name']!r} in tenant {region.tenant_id}",
        )
        region.name = data["name"]
    if "description" in data:
        region.description = data["description"]
    if "variables" in data:
        merge_variables(region, data["variables"], limits, sealer)
    flush_or_conflict(session, f"region {region.name!r} already exists",
                      {"name": "already exists"})
    return region


def delete_region(session: Session, ctx: RequestContext, region: Region, *,
                  cascade: bool = False) -> None:
    ctx.require(Action.WRITE)
    if not cascade:
        hosts = session.scalar(
            select(func.count()).select_from(Host).where(Host.region_id == region.id))
        groups = session.scalar(
            select(func.count()).select_from(Group).where(Group.region_id == region.id))
        if hosts or groups:
            raise Conflict(f"region {region.id} still has {hosts} host(s) and {groups} "
                           "group(s); delete them first or pass cascade=true")
    session.delete(region)
    session.flush()


def _set_keystone_project(session: Session, tenant: Tenant, project_id: str | None) -> None:
    """Record the Keystone project whose tokens act in ``tenant`` (None: none)."""
    if project_id is not None and project_id != tenant.keystone_project_id:
        check("keystone_project_id", keystone_id_problem(project_id))
        holder = session.scalar(select(Tenant.id).where(Tenant.keystone_project_id == project_id))
        if holder is not None:
            raise Conflict(f"Keystone project {project_id} is already tenant {holder}'s",
                           fields={"keystone_project_id": "already another tenant's"})
    tenant.keystone_project_id = project_id


def _ensure_unique(session: Session, stmt: Any, what: str) -> None:
    if session.scalar(stmt) is not None:
        raise Conflict(f"{what} already exists", fields={"name": "already exists"})
