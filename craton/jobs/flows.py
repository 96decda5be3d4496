"""A job as a TaskFlow flow:

    start → materialize the bundle → check out the source → run → summarize

``run`` is one ansible-runner run over the aggregate bundle (layout ``ansible``) or a graph of
one task per host (layout ``hosts``), where a host of a group that ``depends_on`` another waits
for a gate task that waits for that group's hosts. A host task never raises for what Ansible
reports — a failed host is a result, not a reason to revert the whole job; hosts whose
dependencies did not succeed end ``skipped`` with the reason.

Tasks run at least once: after a worker dies, TaskFlow runs an interrupted task again. So each
host task first looks at its row in ``job_hosts`` and returns the recorded result of a host that
already finished, and the aggregate run limits itself to hosts not finished yet.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session
from taskflow import task
from taskflow.patterns import graph_flow, linear_flow
from taskflow.types.failure import Failure

from craton.config import LimitSettings
from craton.db.models import Host, HostRunStatus, HostVariable, Job, JobHost, JobStatus, Region
from craton.db.util import chunked
from craton.errors import CratonError
from craton.files import private_dir
from craton.inventory.bundle import BundleSpec, prepare_bundle
from craton.inventory.select import HostFilter
from craton.inventory.variables import encode_value, too_many_problem
from craton.jobs.events import HostProgress, Redactor
from craton.jobs.runner import HostOutcome, RunOutcome, run_playbook
from craton.jobs.runtime import JobRuntime, job_context, runtime
from craton.jobs.service import counts_for
from craton.jobs.sources import checkout, playbook_path
from craton.names import variable_key_problem
from craton.values import utcnow, value_digest


def work_dir(rt: JobRuntime, job_id: int) -> Path:
    return rt.settings.jobs_dir / str(job_id)


def load_job(rt: JobRuntime, job_id: int) -> Job:
    with rt.db.transaction(write=False) as session:
        job = session.get(Job, job_id)
        if job is None:
            raise CratonError(f"job {job_id} no longer exists")
        session.expunge(job)
        return job


class StartJob(task.Task):
    """Marks the job running; if the flow fails, its revert (run last) records why."""

    def execute(self, runtime_key: str, job_id: int) -> None:
        rt = runtime(runtime_key)
        with rt.db.transaction() as session:
            job = session.get(Job, job_id)
            job.status = JobStatus.RUNNING
            job.started_at = job.started_at or utcnow()
        rt.emit(job_id, "job", None, {"status": "running"})

    def revert(self, runtime_key: str, job_id: int, *args: Any, **kwargs: Any) -> None:
        rt = runtime(runtime_key)
        failures = kwargs.get("flow_failures") or {}
        message = "; ".join(_failure_text(f) for f in failures.values()) or "the job failed"
        finish(rt, job_id, JobStatus.FAILED, message,
               unfinished=f"the job stopped before this host ran: {message}")


def _failure_text(failure: Failure) -> str:
    exception = failure.exception
    if isinstance(exception, CratonError):
        return exception.message
    return f"{failure.exception_str or failure}"


def job_tenant(session: Session, job: Job) -> int:
    """The tenant of the job's region: whose secrets and sources the job may use."""
    return session.scalar(select(Region.tenant_id).where(Region.id == job.region_id))


class Materialize(task.Task):
    """The same bundle the API serves (layout as the job says), for exactly the job's hosts."""

    def execute(self, runtime_key: str, job_id: int) -> None:
        rt = runtime(runtime_key)
        job = load_job(rt, job_id)
        with rt.db.transaction(write=False) as session:
            tenant_id = job_tenant(session, job)
            host_ids = tuple(session.scalars(select(JobHost.host_id).where(
                JobHost.job_id == job_id, JobHost.host_id.is_not(None))))
        target = work_dir(rt, job_id) / "bundle"
        shutil.rmtree(target, ignore_errors=True)
        private_dir(target)
        spec = BundleSpec(region_id=job.region_id, layout=job.layout, format="tgz",
                          filter=HostFilter(region_id=job.region_id, ids=host_ids))
        bundle = prepare_bundle(rt.db, job_context(tenant_id, job_id), spec, rt.fetcher,
                                rt.secrets)
        etag = bundle.etag
        bundle.write_to(target)
        with rt.db.transaction() as session:
            session.execute(update(Job).where(Job.id == job_id).values(bundle_etag=etag)
                            .execution_options(synchronize_session=False))
        rt.emit(job_id, "job", None, {"step": "materialized", "bundle_etag": etag})


class FetchSource(task.Task):
    def execute(self, runtime_key: str, job_id: int) -> None:
        rt = runtime(runtime_key)
        job = load_job(rt, job_id)
        with rt.db.transaction(write=False) as session:
            tenant_id = job_tenant(session, job)
        checkout(rt.fetcher.for_tenant(tenant_id), job.source_url, job.source_pin, job.playbook,
                 work_dir(rt, job_id) / "project")
        rt.emit(job_id, "job", None, {"step": "source", "pin": job.source_pin})


class Gate(task.Task):
    """Done when every host of ``group`` is; says which of them did not succeed."""

    def __init__(self, group: str, members: list[str]) -> None:
        super().__init__(name=f"gate:{group}", provides=f"after:{group}",
                         requires=[f"result:{host}" for host in members])
        self.group = group

    def execute(self, **results: dict[str, Any]) -> dict[str, Any]:
        failed = sorted(r["host"] for r in results.values()
                        if not HostRunStatus(r["status"]).succeeded)
        return {"group": self.group, "failed": failed}


class RunHost(task.Task):
    """One host's run in its own private data directory; never raises for Ansible's verdict."""

    def __init__(self, host: str, gates: list[str], after: list[str]) -> None:
        super().__init__(name=f"host:{host}", provides=f"result:{host}",
                         requires=[f"after:{g}" for g in gates] + [f"result:{h}" for h in after])
        self.host = host

    def execute(self, runtime_key: str, job_id: int, **upstream: dict[str, Any]
                ) -> dict[str, Any]:
        rt = runtime(runtime_key)
        recorded = _recorded_status(rt, job_id, self.host)
        if recorded is not None and recorded.finished:
            return {"host": self.host, "status": recorded.value}
        job = load_job(rt, job_id)
        reason = _blocked_by(upstream)
        private = work_dir(rt, job_id) / "bundle" / "hosts" / self.host
        if rt.cancelled(job_id):
            status = _skip(rt, job_id, [self.host], "the job was cancelled before this host ran")
        elif reason is not None:
            status = _skip(rt, job_id, [self.host], reason)
        elif not private.is_dir():
            status = _skip(rt, job_id, [self.host], "the host left the inventory after the job "
                                                    "was submitted")
        else:
            outcome = _run(rt, job, private, limit=None, mark=f"job-{job_id}/{self.host}")
            status = _record_hosts(rt, job_id, [self.host], outcome)[self.host]
        return {"host": self.host, "status": status.value}


def _blocked_by(upstream: dict[str, dict[str, Any]]) -> str | None:
    reasons = []
    for result in upstream.values():
        if "group" in result and result["failed"]:
            shown = ", ".join(result["failed"][:5]) + (" …" if len(result["failed"]) > 5 else "")
            reasons.append(f"{shown} in group {result['group']} did not succeed")
        elif "host" in result and not HostRunStatus(result["status"]).succeeded:
            reasons.append(f"{result['host']} did not succeed")
    return "waited for depends_on: " + "; ".join(reasons) if reasons else None


class RunAggregate(task.Task):
    """One ansible-runner run over every host not finished yet."""

    def execute(self, runtime_key: str, job_id: int) -> None:
        rt = runtime(runtime_key)
        job = load_job(rt, job_id)
        with rt.db.transaction(write=False) as session:
            rows = session.execute(select(JobHost.host_name, JobHost.status)
                                   .where(JobHost.job_id == job_id)).all()
        todo = sorted(name for name, status in rows if not HostRunStatus(status).finished)
        if not todo:
            return
        if rt.cancelled(job_id):
            _skip(rt, job_id, todo, "the job was cancelled before this host ran")
            return
        outcome = _run(rt, job, work_dir(rt, job_id) / "bundle", limit=",".join(todo),
                       mark=f"job-{job_id}/*")
        _record_hosts(rt, job_id, todo, outcome)


def _run(rt: JobRuntime, job: Job, private: Path, *, limit: str | None,
         mark: str) -> RunOutcome:
    secrets_dir = private / "secrets"
    secrets = [p.read_text(errors="replace") for p in secrets_dir.rglob("*") if p.is_file()] \
        if secrets_dir.is_dir() else []

    def on_event(kind: str, host: str | None, data: dict[str, Any], uuid: str) -> None:
        rt.emit(job.id, kind, host, data, uuid or None)

    def on_host(host: str, state: HostOutcome) -> None:
        if state.status is HostRunStatus.RUNNING:
            rt.sink.progress(HostProgress(job.id, host, state.current_task))

    return run_playbook(
        private, work_dir(rt, job.id) / "project", playbook_path(job.playbook),
        forks=job.forks, check=job.check_mode, diff=job.diff_mode,
        extra_vars=json.loads(job.extra_vars_json),
        host_key_checking=rt.settings.jobs.host_key_checking, on_event=on_event,
        on_host=on_host, cancelled=lambda: rt.cancelled(job.id), redactor=Redactor(secrets),
        limit=limit, mark=mark, ident=f"job-{job.id}", sandbox=rt.sandbox)


def _recorded_status(rt: JobRuntime, job_id: int, host: str) -> HostRunStatus | None:
    with rt.db.transaction(write=False) as session:
        found = session.scalar(select(JobHost.status).where(JobHost.job_id == job_id,
                                                            JobHost.host_name == host))
    return HostRunStatus(found) if found is not None else None


def _skip(rt: JobRuntime, job_id: int, hosts: list[str], reason: str) -> HostRunStatus:
    """Skip ``hosts`` (one statement however many), saying why."""
    with rt.db.transaction() as session:
        for chunk in chunked(hosts):
            session.execute(
                update(JobHost).where(JobHost.job_id == job_id, JobHost.host_name.in_(chunk))
                .values(status=HostRunStatus.SKIPPED, message=reason, finished_at=utcnow())
                .execution_options(synchronize_session=False))
    for host in hosts:
        rt.emit(job_id, "host_skipped", host, {"msg": reason})
    return HostRunStatus.SKIPPED


def _record_hosts(rt: JobRuntime, job_id: int, hosts: list[str],
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
            final[host] = (HostRunStatus.SKIPPED,
                           "the job was cancelled while this host ran", None)
        else:
            message = (state.message if state else None) or outcome.message or \
                "Ansible did not run this host (no play targeted it)"
            final[host] = (HostRunStatus.SKIPPED if outcome.status == "successful" else
                           HostRunStatus.FAILED, message, None)
    reached: list[int] = []
    unreached: list[int] = []
    with rt.db.transaction() as session:
        rows = {row.host_name: row for chunk in chunked(hosts) for row in session.scalars(
            select(JobHost).where(JobHost.job_id == job_id, JobHost.host_name.in_(chunk)))}
        for host, (status, message, state) in final.items():
            row = rows.get(host)
            if row is None:
                continue
            row.status, row.message, row.finished_at = status, message, now
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
                written, refused = _write_audit(session, row.host_id, job_id, state.audit,
                                                rt.settings.limits)
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


def _write_audit(session: Any, host_id: int, job_id: int, facts: dict[str, Any],
                 limits: LimitSettings) -> tuple[list[str], dict[str, str]]:
    """Store ``craton_audit`` facts as the host's variables, marked as written by the job.
    A playbook is tenant code: a fact the API would refuse as a variable (past [limits], or
    one variable too many) is not written, and comes back with the reason instead."""
    written: list[str] = []
    refused: dict[str, str] = {}
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
        if row is None:
            session.add(HostVariable(host_id=host_id, key=key, value_json=text,
                                     value_digest=value_digest(text), job_id=job_id))
        else:
            row.value_json, row.value_digest, row.job_id = text, value_digest(text), job_id
        written.append(key)
    if written:
        host = session.get(Host, host_id)
        host.updated_at = utcnow()
    return written, refused


class Summarize(task.Task):
    def execute(self, runtime_key: str, job_id: int) -> None:
        rt = runtime(runtime_key)
        job = load_job(rt, job_id)
        with rt.db.transaction(write=False) as session:
            counts = counts_for(session, [job_id])[job_id]
        bad = counts["failed"] + counts["unreachable"]
        if job.cancel_requested:
            status, message = JobStatus.CANCELLED, "cancelled on request"
        elif bad:
            status = JobStatus.FAILED
            message = ", ".join(f"{counts[k]} {k}" for k in ("failed", "unreachable", "skipped")
                                if counts[k])
        else:
            status, message = JobStatus.SUCCEEDED, None
        finish(rt, job_id, status, message, unfinished="the job ended before this host ran")


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
        shutil.rmtree(work_dir(rt, job_id), ignore_errors=True)


def build_flow(job_id: int, runtime_key: str) -> linear_flow.Flow:
    """The flow of a job (the factory TaskFlow calls again to resume it)."""
    rt = runtime(runtime_key)
    job = load_job(rt, job_id)
    with rt.db.transaction(write=False) as session:
        hosts = list(session.scalars(select(JobHost.host_name).where(JobHost.job_id == job_id)
                                     .order_by(JobHost.host_name)))
    flow = linear_flow.Flow(f"job-{job_id}")
    flow.add(StartJob(), Materialize(), FetchSource())
    if job.layout == "ansible":
        flow.add(RunAggregate())
    else:
        plan = json.loads(job.plan_json)
        run = graph_flow.Flow("hosts")
        for group, members in sorted(plan["gates"].items()):
            run.add(Gate(group, members))
        for host in hosts:
            waits = plan["waits"].get(host, {})
            run.add(RunHost(host, waits.get("gates", []), waits.get("hosts", [])))
        flow.add(run)
    flow.add(Summarize())
    return flow
