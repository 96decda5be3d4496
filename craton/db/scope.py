"""Tenant scoping: every lookup of an inventory object goes through here.

A caller scoped to a tenant gets ``NotFound`` for another tenant's object, exactly as for an id
that does not exist, so ids leak nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Select, select
from sqlalchemy.orm import Session
from sqlalchemy.orm.interfaces import LoaderOption

from craton.context import Action, RequestContext
from craton.db.models import (
    MAX_ID,
    ApiKey,
    Change,
    Group,
    Host,
    Job,
    Reference,
    Region,
    Secret,
    Tenant,
)
from craton.errors import NotFound

M = TypeVar("M")

# How each model reaches its tenant: the column holding a region id, host id or group id.


def _regions_of(tenant_id: int) -> Select[Any]:
    return select(Region.id).where(Region.tenant_id == tenant_id)


def _hosts_of(tenant_id: int) -> Select[Any]:
    return select(Host.id).where(Host.region_id.in_(_regions_of(tenant_id)))


def _groups_of(tenant_id: int) -> Select[Any]:
    return select(Group.id).where(Group.region_id.in_(_regions_of(tenant_id)))


def tenant_clause(model: type, tenant_id: int) -> ColumnElement[bool]:
    """A WHERE clause keeping only ``model`` rows that belong to ``tenant_id``."""
    if model is Tenant:
        return Tenant.id == tenant_id
    if model is Region:
        return Region.tenant_id == tenant_id
    if model in (Host, Group):
        return model.region_id.in_(_regions_of(tenant_id))  # type: ignore[attr-defined]
    if model is Secret:
        return Secret.host_id.in_(_hosts_of(tenant_id))
    if model is Reference:
        return Reference.group_id.in_(_groups_of(tenant_id))
    if model is Job:
        return Job.region_id.in_(_regions_of(tenant_id))
    if model is ApiKey:
        return ApiKey.tenant_id == tenant_id
    if model is Change:
        return Change.tenant_id == tenant_id
    raise TypeError(f"{model.__name__} is not a tenant-scoped model")


def scoped_select(ctx: RequestContext, model: type[M]) -> Select[tuple[M]]:
    """``SELECT model`` restricted to what ``ctx`` may see."""
    ctx.require(Action.READ)
    stmt = select(model)
    if ctx.tenant_id is not None:
        stmt = stmt.where(tenant_clause(model, ctx.tenant_id))
    return stmt


def noun(model: type) -> str:
    return {"Tenant": "tenant", "Region": "region", "Host": "host", "Group": "group",
            "Secret": "secret", "Reference": "reference", "Job": "job",
            "ApiKey": "API key", "Change": "change"}[model.__name__]


def get_scoped(session: Session, ctx: RequestContext, model: type[M], object_id: int,
               options: Sequence[LoaderOption] = (), *, for_update: bool = False) -> M:
    """The object ``model`` with ``object_id`` if ``ctx`` may see it; otherwise NotFound."""
    if not 1 <= object_id <= MAX_ID:
        raise NotFound(f"{noun(model)} {object_id} not found")
    stmt = scoped_select(ctx, model).where(model.id == object_id)  # type: ignore[attr-defined]
    if options:
        stmt = stmt.options(*options)
    if for_update:
        stmt = stmt.with_for_update()
    found = session.scalars(stmt).first()
    if found is None:
        raise NotFound(f"{noun(model)} {object_id} not found")
    return found
