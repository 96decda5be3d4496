"""Submitting, reading and cancelling jobs (everything the API asks of jobs but running them).

A job is pinned when it is submitted: its hosts (the filter's selection then), its source (a
commit, or a snapshot digest), and its plan — which hosts wait for which through the groups'
``depends_on`` — so a job can be explained afterwards and a resumed run is the same run.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import delete, func, insert, select
from sqlalchemy.orm import Session

from craton.config import LimitSettings, QuotaSettings
from craton.context import Action, RequestContext
from craton.db.models import (
    Group,
    Host,
    HostGroup,
    HostRunStatus,
    Job,
    JobEvent,
    JobHost,
    JobStatus,
    Quota,
    Region,
)
from craton.db.scope import get_scoped
from craton.db.util import chunked
from craton.errors import Conflict, invalid
from craton.inventory.graph import describe_cycle, find_cycle
from craton.inventory.quotas import check_quota
from craton.inventory.select import build_filter, check_group_exists, host_conditions
from craton.inventory.snapshot import load_snapshot
from craton.inventory.variables import encode_variables
from craton.jobs.sources import pin_source
from craton.sources.fetch import Fetcher
from craton.values import canonical_json, iso_utc, utcnow

LAYOUTS = ("hosts", "ansible")


@dataclasses.dataclass(frozen=True)
class JobRequest:
    region_id: int
    playbook: str
    filters: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    source_url: str | None = None
    source_ref: str | None = None
    source_path: str | None = None
    layout: str = "hosts"
    forks: int | None = None
    check: bool = False
    diff: bool = False
    extra_vars: Mapping[str, Any] = dataclasses.field(default_factory=dict)


def submit_job(session: Session, ctx: RequestContext, request: JobRequest, *, fetcher: Fetcher,
               engine: str, default_forks: int, max_forks: int, limits: LimitSettings,
               quotas: QuotaSettings) -> Job:
    """Validate, pin and record a job (status pending, every host pending), if the tenant's
    quota of concurrent jobs leaves room for it."""
    ctx.require(Action.WRITE)
    region = get_scoped(session, ctx, Region, request.region_id)
    if request.layout not in LAYOUTS:
        raise invalid({"layout": f"must be one of {', '.join(LAYOUTS)}"})
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
    )
    session.add(job)
    session.flush()
    session.execute(insert(JobHost.__table__), [
        {"job_id": job.id, "host_name": name, "host_id": host_id,
         "status": HostRunStatus.PENDING} for host_id, name in hosts])
    return job


def make_plan(session: Session, ctx: RequestContext, region_id: int,
              names: Mapping[int, str]) -> dict[str, Any]:
    """Which hosts wait for which (``names``: the selected hosts, id → name): a host of a
    group that depends on group D starts only when every selected host of D has finished (a
    host in D itself waits for the others). Groups are a DAG, yet hosts in several groups could
    still wait for each other: that is refused."""
    graph = load_snapshot(session, ctx, region_id, fetcher=None).graph
    host_ids = list(names)
    direct: dict[int, set[int]] = defaultdict(set)
    for chunk in chunked(host_ids):
        for host_id, group_id in session.execute(
                select(HostGroup.host_id, HostGroup.group_id)
                .where(HostGroup.host_id.in_(chunk))):
            direct[host_id].add(group_id)
    effective = {h: set().union(*(graph.ancestors(g) for g in direct[h])) if direct[h] else set()
                 for h in host_ids}
    members: dict[int, list[str]] = defaultdict(list)
    for host_id in sorted(host_ids, key=lambda h: names[h]):
        for group_id in effective[host_id]:
            members[group_id].append(names[host_id])
    gates: dict[str, list[str]] = {}
    waits: dict[str, dict[str, list[str]]] = {}
    for host_id in host_ids:
        host = names[host_id]
        needed = sorted({d for g in effective[host_id] for d in graph.nodes[g].depends_on
                         if members.get(d)}, key=lambda g: graph.nodes[g].name)
        entry: dict[str, list[str]] = {"gates": [], "hosts": []}
        for group_id in needed:
            group = graph.nodes[group_id].name
            if host in members[group_id]:
                entry["hosts"] += [h for h in members[group_id] if h != host]
            else:
                gates[group] = members[group_id]
                entry["gates"].append(group)
        entry["hosts"] = sorted(set(entry["hosts"]))
        if entry["gates"] or entry["hosts"]:
            waits[host] = entry
    edges = [(f"gate:{g}", f"host:{h}") for g, hosts in gates.items() for h in hosts]
    edges += [(f"host:{host}", f"gate:{g}") for host, e in waits.items() for g in e["gates"]]
    edges += [(f"host:{host}", f"host:{h}") for host, e in waits.items() for h in e["hosts"]]
    cycle = find_cycle(edges)
    if cycle is not None:
        path = describe_cycle(cycle, {})
        raise Conflict(f"these hosts would wait for each other through depends_on: {path}",
                       fields={"filters": f"depends_on cycle between hosts: {path}"})
    return {"gates": gates, "waits": waits}


def counts_for(session: Session, job_ids: Sequence[int]) -> dict[int, dict[str, int]]:
    """Hosts per status for each job, in one query."""
    found: dict[int, dict[str, int]] = {job_id: {s.value: 0 for s in HostRunStatus}
                                        for job_id in job_ids}
    if job_ids:
        for job_id, status, count in session.execute(
                select(JobHost.job_id, JobHost.status, func.count())
                .where(JobHost.job_id.in_(list(job_ids)))
                .group_by(JobHost.job_id, JobHost.status)):
            found[job_id][HostRunStatus(status).value] = count
    return found


def last_events(session: Session, job_ids: Sequence[int]) -> dict[int, int]:
    """The sequence number of each job's latest event (0 before the first), in one query: a
    reader takes a snapshot of the job, then follows its events from there."""
    found = dict.fromkeys(job_ids, 0)
    if job_ids:
        found.update(session.execute(
            select(JobEvent.job_id, func.max(JobEvent.seq))
            .where(JobEvent.job_id.in_(list(job_ids))).group_by(JobEvent.job_id)).all())
    return found


def direct_groups(session: Session, host_ids: Sequence[int]) -> dict[int, list[str]]:
    """The groups each host is directly a member of, by name, in one query."""
    found: dict[int, list[str]] = defaultdict(list)
    for chunk in chunked(host_ids):
        for host_id, name in session.execute(
                select(HostGroup.host_id, Group.name).join(Group, Group.id == HostGroup.group_id)
                .where(HostGroup.host_id.in_(chunk)).order_by(Group.name)):
            found[host_id].append(name)
    return found


def progress(counts: Mapping[str, int]) -> int:
    total = sum(counts.values())
    done = sum(n for status, n in counts.items() if HostRunStatus(status).finished)
    return 100 if total == 0 else done * 100 // total


def request_cancel(session: Session, ctx: RequestContext, job: Job) -> Job:
    ctx.require(Action.WRITE)
    if not job.status.finished and not job.cancel_requested:
        job.cancel_requested = True
        session.flush()
    return job


def host_jobs(session: Session, host_id: int, *, limit: int,
              before: int | None = None) -> list[tuple[JobHost, Job]]:
    """A host's part in its jobs, newest job first (those before job ``before``, if given)."""
    stmt = (select(JobHost, Job).join(Job, Job.id == JobHost.job_id)
            .where(JobHost.host_id == host_id))
    if before is not None:
        stmt = stmt.where(JobHost.job_id < before)
    return [(job_host, job) for job_host, job in
            session.execute(stmt.order_by(JobHost.job_id.desc()).limit(limit))]


def host_status(session: Session, host: Host) -> dict[str, Any]:
    """Where a host is at: its last job, the task it is in or stopped at, the result."""
    status: dict[str, Any] = {"host_id": host.id, "name": host.name,
                              "reachable": host.reachable, "last_seen_at": host.last_seen_at,
                              "job": None}
    for job_host, job in host_jobs(session, host.id, limit=1):
        status["job"] = {"id": job.id, "status": job.status.value, "playbook": job.playbook,
                         "result": job_host.status.value, "task": job_host.current_task,
                         "message": job_host.message,
                         "started_at": iso_utc(job_host.started_at),
                         "finished_at": iso_utc(job_host.finished_at)}
    return status


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
