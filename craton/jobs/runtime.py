"""What running jobs needs from the process: settings, database, secrets, sources, the event
sink. TaskFlow rebuilds flows from an importable factory — possibly in another process, after
a crash — so tasks cannot hold these objects: they look their runtime up by a key both sides
share, the database URL."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import select

from craton.config import Settings
from craton.context import RequestContext
from craton.db.models import Job, Region
from craton.db.session import Database
from craton.errors import CratonError
from craton.jobs.events import Event, EventFeed, EventSink, RedisLink
from craton.jobs.sandbox import Sandbox
from craton.jobs.streams import EventHub
from craton.policy import Policy
from craton.secrets.backends import SecretBackend
from craton.sources.fetch import Fetcher

_RUNTIMES: dict[str, JobRuntime] = {}
_LOCK = threading.Lock()
CANCEL_CHECK_SECONDS = 1.0


class JobRuntime:
    def __init__(self, settings: Settings, db: Database, secrets: SecretBackend,
                 fetcher: Fetcher, policy: Policy | None = None) -> None:
        self.settings = settings
        self.policy = policy or Policy(settings.policy.file or None)
        """The rules a job's rights are checked against (its submitter's roles)."""
        self.db = db
        self.secrets = secrets
        self.fetcher = fetcher
        self.key = db.url
        self.redis = RedisLink(settings.redis.url, settings.redis.stream_max_len,
                               settings.redis.prefix) if settings.redis.url else None
        self.local_jobs: set[int] = set()
        """Jobs this process runs now."""
        self._runs: set[int] = set()
        self._runs_changed = threading.Condition()
        self.feed = EventFeed(db)
        self.hub = EventHub(db, self.redis, self.feed, self.local_jobs.__contains__,
                            max_streams=settings.api.max_streams,
                            max_per_caller=settings.api.max_streams_per_caller)
        self.sink = EventSink(db, self.redis, self.hub.publish)
        self.sandbox = make_sandbox(settings)
        self._cancel_checked: dict[int, tuple[float, bool]] = {}
        self._taskflow_backend: Any = None
        self.stopping = threading.Event()
        """Set when the process shuts down: runs stop at once and record nothing (see
        ``craton.jobs.tasks``), so the next process runs them again."""

    @contextlib.contextmanager
    def playbook_run(self, job_id: int) -> Iterator[None]:
        """Marks the job's ansible-playbook run as going on in this process while inside."""
        with self._runs_changed:
            self._runs.add(job_id)
        try:
            yield
        finally:
            with self._runs_changed:
                self._runs.discard(job_id)
                self._runs_changed.notify_all()

    def wait_for_runs(self, timeout: float) -> bool:
        """Wait until no ansible-playbook run goes on in this process; False on timeout."""
        with self._runs_changed:
            return self._runs_changed.wait_for(lambda: not self._runs, timeout)

    def work_dir(self, job_id: int) -> Path:
        """Where a job's bundle and playbooks are unpacked while it runs."""
        return self.settings.jobs_dir / str(job_id)

    def load_job(self, job_id: int) -> Job:
        with self.db.transaction(write=False) as session:
            job = session.get(Job, job_id)
            if job is None:
                raise CratonError(f"job {job_id} no longer exists")
            session.expunge(job)
            return job

    def job_rights(self, job: Job) -> RequestContext:
        """The context the job acts in: its submitter's roles in the job's tenant."""
        return job_context(self.job_tenant(job), job, self.policy)

    def job_tenant(self, job: Job) -> int:
        """The tenant of the job's region: whose secrets and sources the job may use."""
        with self.db.transaction(write=False) as session:
            return session.scalar(select(Region.tenant_id).where(Region.id == job.region_id))

    def hold_if_stopping(self) -> None:
        """While the process shuts down, a task's thread waits here for the exit instead of
        recording what it was doing."""
        if self.stopping.is_set():
            threading.Event().wait()

    def emit(self, job_id: int, kind: str, host: str | None, data: dict[str, Any],
             uuid: str | None = None) -> None:
        event = Event(job_id=job_id, kind=kind, host=host, data=data)
        if uuid:
            event.uuid = uuid
        self.sink.emit(event)

    def cancelled(self, job_id: int) -> bool:
        """Whether someone asked to cancel the job (read from the database at most once a
        second, since ansible-runner asks often)."""
        checked_at, answer = self._cancel_checked.get(job_id, (0.0, False))
        if answer or time.monotonic() - checked_at < CANCEL_CHECK_SECONDS:
            return answer
        with self.db.transaction(write=False) as session:
            answer = bool(session.scalar(select(Job.cancel_requested).where(Job.id == job_id)))
        self._cancel_checked[job_id] = (time.monotonic(), answer)
        return answer

    def taskflow_backend(self) -> Any:
        """TaskFlow's persistence, in Craton's own database (tables made by our migrations)."""
        if self._taskflow_backend is None:
            from taskflow.persistence import backends

            self._taskflow_backend = backends.fetch({"connection": self.db.url})
        return self._taskflow_backend

    def close(self) -> None:
        self.sink.close()
        if self._taskflow_backend is not None:
            self._taskflow_backend.close()


def make_sandbox(settings: Settings) -> Sandbox | None:
    """How this process confines jobs' Ansible (None: not at all, ``[jobs] sandbox = off``)."""
    jobs = settings.jobs
    if not jobs.sandbox:
        return None
    known_hosts = Path(jobs.known_hosts).expanduser() if jobs.known_hosts else None
    paths = [(Path(entry.removesuffix(":rw")).expanduser(), entry.endswith(":rw"))
             for entry in jobs.sandbox_paths]
    return Sandbox(known_hosts=known_hosts,
                   read_only=tuple(path for path, rw in paths if not rw),
                   read_write=tuple(path for path, rw in paths if rw))


def register(runtime: JobRuntime) -> None:
    with _LOCK:
        _RUNTIMES[runtime.key] = runtime


def unregister(runtime: JobRuntime) -> None:
    with _LOCK:
        if _RUNTIMES.get(runtime.key) is runtime:
            del _RUNTIMES[runtime.key]


def runtime(key: str) -> JobRuntime:
    try:
        return _RUNTIMES[key]
    except KeyError:
        raise RuntimeError(f"no job runtime for {key!r} in this process") from None


def job_context(tenant_id: int, job: Job, policy: Policy | None = None) -> RequestContext:
    """Who a job acts as: its submitter's roles inside the job's tenant (never a cloud admin
    across tenants), as recorded when it was submitted."""
    roles = frozenset(role for role in job.submitter_roles.split(",") if role)
    return RequestContext(tenant_id=tenant_id, user=f"job:{job.id} ({job.created_by})",
                          roles=roles, is_admin=False, request_id=f"job-{job.id}",
                          policy=policy)
