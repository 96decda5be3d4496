"""The steps of a job, as TaskFlow tasks:

    start → materialize the bundle → check out the source → run the hosts → summarize

Every job runs on the aggregate bundle (``layout=ansible``: the inventory Ansible reads as
it is). "Run the hosts" is one task per wave of the job's plan (layout ``hosts``, see
``craton.jobs.plan``) or one task for every host (layout ``ansible``); each is one
ansible-playbook run limited to its hosts. A run never raises for what Ansible reports — a
failed host is a result, not a reason to revert the job; a host whose awaited hosts did not
succeed is skipped with the reason.

Tasks run at least once: after a worker dies, TaskFlow runs an interrupted task again. So a
run limits itself to the hosts not finished yet. When the process is shutting down, a task
records nothing about the run it stopped and holds its place until the process exits — it
stays RUNNING in TaskFlow's record, so the next process runs it again.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from sqlalchemy import select, union, update
from taskflow import task
from taskflow.types.failure import Failure

from craton.context import Action
from craton.db.models import (
    Group,
    GroupVariable,
    HostRunStatus,
    HostVariable,
    Job,
    JobHost,
    JobStatus,
    RegionVariable,
)
from craton.errors import CratonError
from craton.files import private_dir
from craton.inventory.bundle import BundleSpec, prepare_bundle
from craton.inventory.select import HostFilter
from craton.jobs import plan as planning
from craton.jobs.events import HostProgress, Redactor, sensitive_texts
from craton.jobs.playbooks import checkout, playbook_path
from craton.jobs.queries import counts_for
from craton.jobs.results import (
    CANCELLED_BEFORE,
    LEFT_INVENTORY,
    finish,
    host_statuses,
    record_hosts,
    skip_hosts,
)
from craton.jobs.runner import HostOutcome, RunOutcome, run_playbook
from craton.jobs.runtime import JobRuntime, runtime
from craton.values import utcnow

BUNDLE = "bundle"
PROJECT = "project"


class StartJob(task.Task):
    """Marks the job running; if the flow fails, its revert (run last) records why."""

    def __init__(self) -> None:
        super().__init__(name="start")

    def execute(self, runtime_key: str, job_id: int) -> None:
        rt = runtime(runtime_key)
        with rt.db.transaction() as session:
            job = session.get(Job, job_id)
            job.status = JobStatus.RUNNING
            job.started_at = job.started_at or utcnow()
        rt.emit(job_id, "job", None, {"status": JobStatus.RUNNING.value})

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


class Materialize(task.Task):
    """The aggregate bundle the API serves (``layout=ansible``), for exactly the job's hosts:
    every run of the job reads it, each limited to its own hosts."""

    def __init__(self) -> None:
        super().__init__(name="materialize")

    def execute(self, runtime_key: str, job_id: int) -> None:
        rt = runtime(runtime_key)
        job = rt.load_job(job_id)
        with rt.db.transaction(write=False) as session:
            host_ids = tuple(session.scalars(select(JobHost.host_id).where(
                JobHost.job_id == job_id, JobHost.host_id.is_not(None))))
        target = rt.work_dir(job_id) / BUNDLE
        shutil.rmtree(target, ignore_errors=True)
        private_dir(target)
        spec = BundleSpec(region_id=job.region_id, layout="ansible", format="tgz",
                          filter=HostFilter(region_id=job.region_id, ids=host_ids))
        rights = rt.job_rights(job)
        # Checked again now: a policy changed since the job was submitted is the one in force.
        with_secrets = job.secrets == "included" and rights.can(Action.USE_SECRETS)
        bundle = prepare_bundle(rt.db, rights, spec, rt.fetcher, rt.secrets,
                                secrets=with_secrets)
        etag = bundle.etag
        bundle.write_to(target)
        with rt.db.transaction() as session:
            session.execute(update(Job).where(Job.id == job_id).values(bundle_etag=etag)
                            .execution_options(synchronize_session=False))
        rt.emit(job_id, "job", None, {"step": "materialized", "bundle_etag": etag})


class FetchSource(task.Task):
    """The playbooks, at the commit or snapshot the job was pinned to."""

    def __init__(self) -> None:
        super().__init__(name="source")

    def execute(self, runtime_key: str, job_id: int) -> None:
        rt = runtime(runtime_key)
        job = rt.load_job(job_id)
        checkout(rt.fetcher.for_tenant(rt.job_tenant(job)), job.source_url, job.source_pin,
                 job.playbook, rt.work_dir(job_id) / PROJECT,
                 git_timeout=rt.settings.sources.git_timeout)
        rt.emit(job_id, "job", None, {"step": "source", "pin": job.source_pin})


class RunHosts(task.Task):
    """One ansible-playbook run over ``hosts`` (those not finished yet): wave ``index`` of
    ``waves`` of the job's plan — or, ``gated=False``, every host in one run."""

    def __init__(self, index: int, waves: int, hosts: list[str], *, gated: bool) -> None:
        super().__init__(name=f"wave:{index}" if gated else "run")
        self.index = index
        self.waves = waves
        self.hosts = hosts
        self.gated = gated

    def execute(self, runtime_key: str, job_id: int) -> None:
        rt = runtime(runtime_key)
        rt.hold_if_stopping()
        job = rt.load_job(job_id)
        statuses = host_statuses(rt, job_id)
        todo = [host for host in self.hosts if not statuses[host].finished]
        if not todo:
            return
        skipped: dict[str, str] = {}
        if rt.cancelled(job_id):
            skipped = dict.fromkeys(todo, CANCELLED_BEFORE)
        elif self.gated:
            plan = json.loads(job.plan_json)
            for host in todo:
                reason = planning.blocked_by(plan, host, statuses)
                if reason is not None:
                    skipped[host] = reason
        bundle = rt.work_dir(job_id) / BUNDLE
        known = _inventory_hosts(bundle)
        skipped.update({host: LEFT_INVENTORY for host in todo
                        if host not in skipped and host not in known})
        if skipped:
            skip_hosts(rt, job_id, skipped)
        todo = [host for host in todo if host not in skipped]
        if not todo:
            return
        if self.gated and self.waves > 1:
            rt.emit(job_id, "job", None, {"step": "wave", "wave": self.index + 1,
                                          "waves": self.waves, "hosts": len(todo)})
        outcome = _run(rt, job, bundle, todo)
        rt.hold_if_stopping()  # a run the shutdown stopped says nothing about its hosts
        record_hosts(rt, job_id, todo, outcome)


def _inventory_hosts(bundle: Path) -> set[str]:
    """The hosts the materialized bundle holds (its manifest lists them)."""
    manifest = json.loads((bundle / "manifest.json").read_text())
    return {host["name"] for host in manifest["hosts"]}


def _secret_texts(rt: JobRuntime, job: Job, bundle: Path) -> list[str]:
    """What the job's events must not hold: its secrets' files, and the values of the
    sensitive variables its inventory holds (named like secrets, or marked sensitive: the keys
    the database keeps sealed for the job's hosts, their groups and region)."""
    secrets_dir = bundle / "secrets"
    texts = [p.read_text(errors="replace") for p in secrets_dir.rglob("*") if p.is_file()] \
        if secrets_dir.is_dir() else []
    if job.secrets != "included":
        return texts  # sensitive values are "<hidden>" in the bundle
    hosts = select(JobHost.host_id).where(JobHost.job_id == job.id)
    groups = select(Group.id).where(Group.region_id == job.region_id)
    with rt.db.transaction(write=False) as session:
        marked = set(session.scalars(union(
            select(HostVariable.key).where(HostVariable.host_id.in_(hosts),
                                           HostVariable.sealed.is_not(None)),
            select(GroupVariable.key).where(GroupVariable.group_id.in_(groups),
                                            GroupVariable.sealed.is_not(None)),
            select(RegionVariable.key).where(RegionVariable.region_id == job.region_id,
                                             RegionVariable.sealed.is_not(None)))))
    for path in sorted((bundle / "inventory").rglob("*.json")):
        variables = json.loads(path.read_text())
        if isinstance(variables, dict):
            texts += sensitive_texts(variables, marked)
    return texts


def _run(rt: JobRuntime, job: Job, bundle: Path, hosts: list[str]) -> RunOutcome:
    secrets = _secret_texts(rt, job, bundle)
    # A limit file, not a pattern: host names never meet Ansible's pattern syntax.
    limit = bundle / "limit"
    limit.write_text("".join(f"{host}\n" for host in hosts))

    def on_event(kind: str, host: str | None, data: dict[str, Any], uuid: str) -> None:
        rt.emit(job.id, kind, host, data, uuid or None)

    def on_host(host: str, state: HostOutcome) -> None:
        if state.status is HostRunStatus.RUNNING:
            rt.sink.progress(HostProgress(job.id, host, state.current_task))

    with rt.playbook_run(job.id):
        return run_playbook(
            bundle, rt.work_dir(job.id) / PROJECT, playbook_path(job.playbook),
            forks=job.forks, check=job.check_mode, diff=job.diff_mode,
            extra_vars=json.loads(job.extra_vars_json),
            host_key_checking=rt.settings.jobs.host_key_checking, on_event=on_event,
            on_host=on_host, redactor=Redactor(secrets),
            cancelled=lambda: rt.stopping.is_set() or rt.cancelled(job.id),
            limit=f"@{limit}", mark=f"job-{job.id}/run", ident=f"job-{job.id}",
            sandbox=rt.sandbox)


class Summarize(task.Task):
    """The job's end: succeeded, failed (saying how many hosts did what) or cancelled."""

    def __init__(self) -> None:
        super().__init__(name="summarize")

    def execute(self, runtime_key: str, job_id: int) -> None:
        rt = runtime(runtime_key)
        job = rt.load_job(job_id)
        with rt.db.transaction(write=False) as session:
            counts = counts_for(session, [job_id])[job_id]
        failed, unreachable, skipped = (HostRunStatus.FAILED, HostRunStatus.UNREACHABLE,
                                        HostRunStatus.SKIPPED)
        if job.cancel_requested:
            status, message = JobStatus.CANCELLED, "cancelled on request"
        elif counts[failed] + counts[unreachable]:
            status = JobStatus.FAILED
            message = ", ".join(f"{counts[k]} {k}" for k in (failed, unreachable, skipped)
                                if counts[k])
        else:
            status, message = JobStatus.SUCCEEDED, None
        finish(rt, job_id, status, message, unfinished="the job ended before this host ran")
