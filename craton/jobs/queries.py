"""Reading jobs: their hosts per status, progress, latest event, a host's jobs — each in one
query however many jobs or hosts a page shows."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from craton.db.models import Group, Host, HostGroup, HostRunStatus, Job, JobEvent, JobHost
from craton.db.util import chunked
from craton.values import iso_utc


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
