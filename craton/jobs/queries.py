"""Reading jobs: their hosts per status, progress, latest event, a host's jobs — each in one
query however many jobs or hosts a page shows."""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import NamedTuple

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from craton.db.models import Group, Host, HostGroup, HostRunStatus, Job, JobEvent, JobHost
from craton.db.util import chunked
from craton.values import utcnow


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


@dataclasses.dataclass(frozen=True)
class JobView:
    """A job as the API shows it: its row, its hosts per status and its latest event."""

    job: Job
    counts: Mapping[str, int]
    last_event: int

    @property
    def hosts(self) -> dict[str, int]:
        return {**self.counts, "total": sum(self.counts.values())}

    @property
    def progress(self) -> int:
        return progress(self.counts)

    @property
    def duration(self) -> float | None:
        """Seconds it ran, or has run so far."""
        if self.job.started_at is None:
            return None
        return ((self.job.finished_at or utcnow()) - self.job.started_at).total_seconds()


def job_views(session: Session, jobs: Sequence[Job]) -> list[JobView]:
    """Each job with its hosts per status and latest event: two queries for the lot."""
    ids = [job.id for job in jobs]
    counts = counts_for(session, ids)
    latest = last_events(session, ids)
    return [JobView(job, counts[job.id], latest[job.id]) for job in jobs]


class JobHostView(NamedTuple):
    """One host of a job, with the groups it is directly a member of now."""

    row: JobHost
    groups: list[str]


def job_host_views(session: Session, rows: Sequence[JobHost]) -> list[JobHostView]:
    groups = direct_groups(session, [row.host_id for row in rows if row.host_id is not None])
    return [JobHostView(row, groups.get(row.host_id, []) if row.host_id else [])
            for row in rows]


class HostJob(NamedTuple):
    """A host's part in one job."""

    job_host: JobHost
    job: Job


def host_jobs(session: Session, host_id: int, *, limit: int,
              before: int | None = None) -> list[HostJob]:
    """A host's part in its jobs, newest job first (those before job ``before``, if given)."""
    stmt = (select(JobHost, Job).join(Job, Job.id == JobHost.job_id)
            .where(JobHost.host_id == host_id))
    if before is not None:
        stmt = stmt.where(JobHost.job_id < before)
    return [HostJob(job_host, job) for job_host, job in
            session.execute(stmt.order_by(JobHost.job_id.desc()).limit(limit))]


class HostStatus(NamedTuple):
    """Where a host is at: its last job, if it has been in one."""

    host: Host
    last: HostJob | None


def host_status(session: Session, host: Host) -> HostStatus:
    return HostStatus(host, next(iter(host_jobs(session, host.id, limit=1)), None))
