"""Submitting, cancelling and pruning jobs.

A job is pinned when it is submitted: its hosts (the filter's selection then), its source (a
commit, or a snapshot digest), and its plan — which hosts wait for which through the groups'
``depends_on`` (``craton.jobs.plan``) — so a job can be explained afterwards and a resumed run
is the same run.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping
from typing import Any

from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session

from craton.config import LimitSettings, QuotaSettings
from craton.context import Action, RequestContext
from craton.db.models import (
    Group,
    GroupVariable,
    Host,
    HostRunStatus,
    HostVariable,
    Job,
    JobHost,
    JobLayout,
    JobStatus,
    Quota,
    Region,
    RegionVariable,
    Secret,
)
from craton.db.scope import get_scoped
from craton.db.util import chunked
from craton.errors import Forbidden, invalid
from craton.inventory.quotas import check_quota
from craton.inventory.select import build_filter, check_group_exists, host_conditions
from craton.inventory.variables import encode_variables
from craton.jobs.plan import make_plan
from craton.jobs.playbooks import pin_source
from craton.sources.fetch import Fetcher
from craton.values import canonical_json, utcnow


@dataclasses.dataclass(frozen=True)
class JobRequest:
    region_id: int
    playbook: str
    filters: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    source_url: str | None = None
    source_ref: str | None = None
    source_path: str | None = None
    layout: JobLayout = JobLayout.HOSTS
    forks: int | None = None
    check: bool = False
    diff: bool = False
    extra_vars: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    omit_secrets: bool = False
    """Run without the hosts' secrets rather than be refused for want of secrets:use."""


MAX_HOSTS_NAMED = 20
"""Hosts a refusal for want of secrets:use names (then: "and N more")."""


def submit_job(session: Session, ctx: RequestContext, request: JobRequest, *, fetcher: Fetcher,
               engine: str, default_forks: int, max_forks: int, limits: LimitSettings,
               quotas: QuotaSettings) -> Job:
    """Validate, pin and record a job (status pending, every host pending), if the tenant's
    quota of concurrent jobs leaves room for it."""
    ctx.require(Action.SUBMIT_JOBS)
    region = get_scoped(session, ctx, Region, request.region_id)
    if request.layout not in list(JobLayout):
        raise invalid({"layout": f"must be one of {', '.join(JobLayout)}"})
    forks = request.forks if request.forks is not None else default_forks
    if not 1 <= forks <= max_forks:
        raise invalid({"forks": f"must be between 1 and {max_forks}"})
    encode_variables(request.extra_vars, limits, "extra_vars")
    flt = build_filter(request.filters, region.id)
    check_group_exists(session, ctx, flt)
    hosts = session.execute(select(Host.id, Host.name).where(*host_conditions(flt))
                            .order_by(Host.name)).all()
    if not hosts:
        raise invalid({"filters": "select no host in the region"})
    if not request.omit_secrets and not ctx.can(Action.USE_SECRETS):
        refuse_secrets(secret_holders(session, region.id, [host_id for host_id, _ in hosts]))
    check_quota(session, region.tenant_id, Quota.CONCURRENT_JOBS, 1, quotas)
    pin = pin_source(fetcher.for_tenant(region.tenant_id), request.source_url,
                     request.source_ref, request.source_path, request.playbook)
    plan = make_plan(session, ctx, region.id, dict(hosts))
    job = Job(
        region_id=region.id, status=JobStatus.PENDING, playbook=request.playbook,
        source_url=request.source_url or (f"file://{request.source_path}"
                                          if request.source_path else None),
        source_ref=request.source_ref, source_pin=pin, layout=request.layout,
        filters_json=canonical_json({k: v for k, v in flt.as_query().items()
                                     if k != "region_id"}),
        plan_json=canonical_json(plan), forks=forks, check_mode=request.check,
        diff_mode=request.diff, extra_vars_json=canonical_json(dict(request.extra_vars)),
        engine=engine, created_by=ctx.user, cancel_requested=False,
        submitter_roles=",".join(sorted(ctx.roles)),
        secrets="omitted" if request.omit_secrets else "included",
    )
    session.add(job)
    session.flush()
    session.execute(insert(JobHost.__table__), [
        {"job_id": job.id, "host_name": name, "host_id": host_id,
         "status": HostRunStatus.PENDING} for host_id, name in hosts])
    return job


def secret_holders(session: Session, region_id: int, host_ids: list[int]) -> list[str]:
    """What would put secrets into the job's bundle: the selected hosts that hold a secret or a
    sensitive variable (by name, sorted), then the region's groups with sensitive variables
    ("group <name>") and the region itself ("region variables") if its own are."""
    hosts: set[str] = set()
    for chunk in chunked(host_ids):
        hosts.update(session.scalars(select(Host.name).join(Secret, Secret.host_id == Host.id)
                                     .where(Host.id.in_(chunk)).distinct()))
        hosts.update(session.scalars(
            select(Host.name).join(HostVariable, HostVariable.host_id == Host.id)
            .where(Host.id.in_(chunk), HostVariable.sealed.is_not(None)).distinct()))
    groups = session.scalars(
        select(Group.name).join(GroupVariable, GroupVariable.group_id == Group.id)
        .where(Group.region_id == region_id, GroupVariable.sealed.is_not(None)).distinct())
    region = session.scalar(select(RegionVariable.key).where(
        RegionVariable.region_id == region_id, RegionVariable.sealed.is_not(None)).limit(1))
    return sorted(hosts) + [f"group {name}" for name in sorted(groups)] + (
        ["region variables"] if region is not None else [])


def refuse_secrets(hosts: list[str]) -> None:
    """A job the submitter may not run with its hosts' secrets: 403 naming what holds them."""
    if not hosts:
        return
    named = ", ".join(hosts[:MAX_HOSTS_NAMED])
    if len(hosts) > MAX_HOSTS_NAMED:
        named += f" and {len(hosts) - MAX_HOSTS_NAMED} more"
    raise Forbidden(
        f"the caller's roles do not allow {Action.USE_SECRETS.value}, and these hosts of the "
        f"job hold secrets or sensitive variables: {named}; submit with \"secrets\": "
        "\"omit\" to run without them",
        fields={"secrets": f"hosts with secrets: {named}"})


def request_cancel(session: Session, ctx: RequestContext, job: Job) -> Job:
    ctx.require(Action.CANCEL_JOBS)
    if not job.status.finished and not job.cancel_requested:
        job.cancel_requested = True
        session.flush()
    return job


def prune_jobs(session: Session, older_than: dt.timedelta) -> list[int]:
    """Delete finished jobs that ended before now - ``older_than`` (their hosts and events go
    with them). Returns the ids deleted."""
    cutoff = utcnow() - older_than
    doomed = list(session.scalars(select(Job.id).where(
        Job.status.in_([s for s in JobStatus if s.finished]), Job.finished_at < cutoff)))
    if doomed:
        session.execute(delete(Job).where(Job.id.in_(doomed))
                        .execution_options(synchronize_session=False))
    return doomed
