"""Per-tenant quotas: how many hosts, groups and secrets a tenant may keep, and how many of its
jobs may be pending or running at once.

Each quota is the configured default (``[quotas]``) unless a cloud admin set the tenant's own.
A write that would go past one is refused whole (429, naming the quota): a bulk request counts
all its hosts at once. The check locks the tenant's row before counting, inside the write's
transaction, so two writers of one tenant count one after the other and cannot both take the
last place (SQLite serializes writers already; on MariaDB the row lock does it).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from craton.config import QuotaSettings
from craton.db.models import (
    Group,
    Host,
    Job,
    JobStatus,
    Quota,
    Region,
    Secret,
    Tenant,
    TenantQuota,
)
from craton.errors import QuotaExceeded

JOBS_RETRY_AFTER = 15
"""Seconds a client told to wait for a running job should wait before asking again: jobs run
for seconds to hours, and asking every 15 s costs little."""

WHAT = {Quota.HOSTS: "hosts", Quota.GROUPS: "groups", Quota.SECRETS: "secrets",
        Quota.CONCURRENT_JOBS: "jobs pending or running"}


def effective_quotas(overrides: Mapping[Quota, int], defaults: QuotaSettings) -> dict[str, int]:
    """Every quota in force for a tenant with ``overrides``, by name."""
    configured = dataclasses.asdict(defaults)
    return {quota.value: overrides.get(quota, configured[quota.value]) for quota in Quota}


def set_quotas(session: Session, tenant: Tenant, changes: Mapping[str, int | None]) -> bool:
    """Set (or, with None, drop back to the default) the tenant's own quotas. Returns whether
    anything changed. Lowering a quota below what the tenant holds removes nothing; it only
    stops the tenant adding more."""
    rows = {row.name: row for row in tenant.quota_rows}
    changed = False
    for name, maximum in changes.items():
        quota = Quota(name)
        row = rows.get(quota)
        if maximum is None:
            if row is not None:
                tenant.quota_rows.remove(row)
                changed = True
        elif row is None:
            tenant.quota_rows.append(TenantQuota(name=quota, maximum=maximum))
            changed = True
        elif row.maximum != maximum:
            row.maximum = maximum
            changed = True
    return changed


def _held(quota: Quota, tenant_id: int) -> Select[tuple[int]]:
    """One query counting what the tenant holds of ``quota``."""
    regions = select(Region.id).where(Region.tenant_id == tenant_id)
    if quota is Quota.HOSTS:
        return select(func.count()).select_from(Host).where(Host.region_id.in_(regions))
    if quota is Quota.GROUPS:
        return select(func.count()).select_from(Group).where(Group.region_id.in_(regions))
    if quota is Quota.SECRETS:
        hosts = select(Host.id).where(Host.region_id.in_(regions))
        return select(func.count()).select_from(Secret).where(Secret.host_id.in_(hosts))
    return select(func.count()).select_from(Job).where(
        Job.region_id.in_(regions), Job.status.in_((JobStatus.PENDING, JobStatus.RUNNING)))


def check_quota(session: Session, tenant_id: int, quota: Quota, adding: int,
                defaults: QuotaSettings) -> None:
    """Refuse (429) a write that would take tenant ``tenant_id`` past its ``quota`` by adding
    ``adding``; otherwise return, holding the tenant's row lock until the transaction ends."""
    session.execute(select(Tenant.id).where(Tenant.id == tenant_id).with_for_update())
    maximum = session.scalar(select(TenantQuota.maximum).where(
        TenantQuota.tenant_id == tenant_id, TenantQuota.name == quota))
    if maximum is None:
        maximum = getattr(defaults, quota.value)
    held = session.scalar(_held(quota, tenant_id)) or 0
    if held + adding <= maximum:
        return
    what = WHAT[quota]
    reason = (f"tenant {tenant_id} may have at most {maximum:,} {what}; it has {held:,}"
              + ("" if quota is Quota.CONCURRENT_JOBS else f" and this request adds {adding:,}"))
    headers = {}
    if quota is Quota.CONCURRENT_JOBS:
        reason += "; retry when one has finished"
        headers["Retry-After"] = str(JOBS_RETRY_AFTER)
    else:
        reason += "; a cloud admin can raise the quota"
    raise QuotaExceeded(f"quota {quota.value} exceeded: {reason}",
                        fields={f"quotas.{quota.value}": reason}, headers=headers)
