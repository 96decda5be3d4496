"""What a job's runs leave in the database: each host's final state, its reachability and its
``craton_audit`` facts; hosts skipped with the reason; the job's end.

Everything here is idempotent per host — a task that runs again after a crash finds the
hosts it already recorded and leaves them alone — and writes a run's hosts in one transaction.
"""

from __future__ import annotations

import shutil
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from craton.config import LimitSettings
from craton.context import Action
from craton.db import changes
from craton.db.models import (
    Host,
    HostRunStatus,
    HostVariable,
    Job,
    JobHost,
    JobStatus,
    Region,
)
from craton.db.util import chunked
from craton.inventory.variables import Sealer, encode_value, stored_form, too_many_problem
from craton.jobs.runner import HostOutcome, RunOutcome
from craton.jobs.runtime import JobRuntime
from craton.names import variable_key_problem
from craton.values import utcnow

CANCELLED_BEFORE = "the job was cancelled before this host ran"
CANCELLED_DURING = "the job was cancelled while this host ran"
NOT_TARGETED = "Ansible did not run this host (no play targeted it)"
LEFT_INVENTORY = "the host left the inventory after the job was submitted"


def host_statuses(rt: JobRuntime, job_id: int) -> dict[str, HostRunStatus]:
    """Where each of the job's hosts is, by name."""
    with rt.db.transaction(write=False) as session:
        return {name: HostRunStatus(status) for name, status in session.execute(
            select(JobHost.host_name, JobHost.status).where(JobHost.job_id == job_id))}


def skip_hosts(rt: JobRuntime, job_id: int, reasons: Mapping[str, str]) -> None:
    """Skip each host with its reason: one statement per distinct reason, however many hosts."""
    by_reason: dict[str, list[str]] = defaultdict(list)
    for host, reason in reasons.items():
        by_reason[reason].append(host)
    now = utcnow()
    with rt.db.transaction() as session:
        for reason, hosts in by_reason.items():
            for chunk in chunked(sorted(hosts)):
                session.execute(
                    update(JobHost).where(JobHost.job_id == job_id,
                                          JobHost.host_name.in_(chunk))
                    .values(status=HostRunStatus.SKIPPED, message=reason, finished_at=now)
                    .execution_options(synchronize_session=False))
    for host in sorted(reasons):
        rt.emit(job_id, "host_skipped", host, {"msg": reasons[host]})


def record_hosts(rt: JobRuntime, job_id: int, hosts: Sequence[str],
                 outcome: RunOutcome) -> dict[str, HostRunStatus]:
    """Each host's final state, what it tells about reachability, and its audit facts — all
    the run's hosts in one transaction."""
    now = utcnow()
    final: dict[str, tuple[HostRunStatus, str | None, HostOutcome | None]] = {}
    for host in hosts:
        state = outcome.hosts.get(host)
        if state is not None and state.status.finished:
            final[host] = (state.status, state.message, state)
        elif outcome.status == "canceled":
            # Ansible had started it (it told of it), or had not got to it yet.
            final[host] = (HostRunStatus.SKIPPED,
                           CANCELLED_BEFORE if state is None else CANCELLED_DURING, state)
        else:
            message = (state.message if state else None) or outcome.message or NOT_TARGETED
            final[host] = (HostRunStatus.SKIPPED if outcome.status == "successful" else
                           HostRunStatus.FAILED, message, None)
    reached: list[int] = []
    unreached: list[int] = []
    audit_refused = None
    if any(state.audit for state in outcome.hosts.values()) and not rt.job_rights(
            rt.load_job(job_id)).can(Action.WRITE):
        audit_refused = f"the job's submitter may not write the inventory ({Action.WRITE.value})"
    with rt.db.transaction() as session:
        rows = {row.host_name: row for chunk in chunked(list(hosts)) for row in session.scalars(
            select(JobHost).where(JobHost.job_id == job_id, JobHost.host_name.in_(chunk)))}
        for host, (status, message, state) in final.items():
            row = rows.get(host)
            if row is None:
                continue
            row.status, row.message, row.finished_at = status, message, now
            if message != CANCELLED_BEFORE:
                row.started_at = row.started_at or now
            if state is not None and state.current_task:
                row.current_task = state.current_task
            if row.host_id is None or state is None:
                continue
            if status is HostRunStatus.UNREACHABLE:
                unreached.append(row.host_id)
            elif state.contacted:
                reached.append(row.host_id)
            if state.audit:
                written, refused = ([], dict.fromkeys(sorted(state.audit), audit_refused)) \
                    if audit_refused else write_audit(session, row.host_id, job_id,
                                                      state.audit, rt.settings.limits,
                                                      rt.secrets)
                rt.emit(job_id, "audit", host, {"variables": written, **(
                    {"refused": refused} if refused else {})})
        for host_ids, values in ((reached, {"reachable": True, "last_seen_at": now}),
                                 (unreached, {"reachable": False})):
            for chunk in chunked(host_ids):
                session.execute(update(Host).where(Host.id.in_(chunk)).values(**values)
                                .execution_options(synchronize_session=False))
    for host, (status, message, _) in final.items():
        rt.emit(job_id, "host_result", host, {"status": status.value, "msg": message})
    return {host: status for host, (status, _, _) in final.items()}


def write_audit(session: Session, host_id: int, job_id: int, facts: dict[str, Any],
                limits: LimitSettings, sealer: Sealer) -> tuple[list[str], dict[str, str]]:
    """Store ``craton_audit`` facts as the host's variables, marked as written by the job.
    A playbook is tenant code: a fact the API would refuse as a variable (past [limits], or
    one variable too many) is not written, and comes back with the reason instead."""
    written: list[str] = []
    refused: dict[str, str] = {}
    attribute_to_job(session, job_id)
    held = set(session.scalars(select(HostVariable.key).where(HostVariable.host_id == host_id)))
    for key, value in sorted(facts.items()):
        if variable_key_problem(key) is not None:
            continue
        text, problem = encode_value(value, limits)
        if problem is None and key not in held:
            problem = too_many_problem(len(held) + 1, limits)
        if problem is not None:
            refused[key] = problem
            continue
        held.add(key)
        row = session.get(HostVariable, (host_id, key))
        value_json, digest, sealed = stored_form(key, text, sealer)
        if row is None:
            session.add(HostVariable(host_id=host_id, key=key, value_json=value_json,
                                     value_digest=digest, sealed=sealed, job_id=job_id))
        else:
            row.value_json, row.value_digest, row.sealed, row.job_id = (
                value_json, digest, sealed, job_id)
        written.append(key)
    if written:
        host = session.get(Host, host_id)
        host.updated_at = utcnow()
    return written, refused


def attribute_to_job(session: Session, job_id: int) -> None:
    """Record ``session``'s writes as job ``job_id``'s: its submitter's, marked with the job."""
    if changes.actor_of(session).job_id == job_id:
        return
    row = session.execute(select(Job.created_by, Region.tenant_id).join(Region)
                          .where(Job.id == job_id)).one()
    changes.attribute(session, changes.Actor(user=row.created_by, tenant_id=row.tenant_id,
                                             auth_strategy="job", job_id=job_id))


def finish(rt: JobRuntime, job_id: int, status: JobStatus, message: str | None, *,
           unfinished: str) -> None:
    """Record the end of a job; hosts still unfinished are skipped with ``unfinished``."""
    now = utcnow()
    with rt.db.transaction() as session:
        session.execute(
            update(JobHost).where(JobHost.job_id == job_id, JobHost.status.in_(
                [HostRunStatus.PENDING, HostRunStatus.RUNNING]))
            .values(status=HostRunStatus.SKIPPED, message=unfinished, finished_at=now)
            .execution_options(synchronize_session=False))
        job = session.get(Job, job_id)
        if job is not None:
            job.status, job.message, job.finished_at = status, message, now
    rt.emit(job_id, "job", None, {"status": status.value, "message": message})
    rt.sink.flush()
    if not rt.settings.jobs.keep_work_dirs:
        shutil.rmtree(rt.work_dir(job_id), ignore_errors=True)


def fail_unfinished(rt: JobRuntime, job_id: int, error: Exception) -> None:
    """End a job whose flow could not run at all (its own revert records other failures)."""
    with rt.db.transaction(write=False) as session:
        status = session.scalar(select(Job.status).where(Job.id == job_id))
    if status is not None and not JobStatus(status).finished:
        finish(rt, job_id, JobStatus.FAILED, f"the job could not run: {error}",
               unfinished="the job stopped before this host ran")
