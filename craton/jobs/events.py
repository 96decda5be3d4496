"""Job events: the database is the record, Redis the fast path.

Producers (ansible-runner's callback, TaskFlow's notifier) hand events to an ``EventSink``,
which never blocks them: a writer thread batches events into ``job_events`` (numbering them per
job), and only after the commit publishes them to the job's Redis stream — whose entry ids are
``0-<seq>``, the same numbers — and hands them to this process's live streams
(``craton.jobs.streams``). Redis being down or restarted costs latency, never an event: readers
catch up from the database (``EventFeed``) by sequence number and use Redis only to learn,
quickly, that there is more.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import queue
import threading
import time
import uuid as uuidlib
from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Mapping
from typing import Any

import tenacity
from sqlalchemy import bindparam, func, insert, or_, select
from sqlalchemy import update as sa_update
from sqlalchemy.exc import IntegrityError

from craton.db.models import HostRunStatus, JobEvent, JobHost
from craton.db.session import Database
from craton.db.util import chunked
from craton.names import is_sensitive_name
from craton.values import canonical_json, iso_utc, utcnow

LOG = logging.getLogger(__name__)

MAX_TEXT = 2000
NUMBERING_ATTEMPTS = 5
"""Tries at numbering a batch of events while other processes number the same job's."""
FLOW_EVENT = "taskflow.flow"
FLOW_END_STATES = frozenset({"SUCCESS", "REVERTED", "FAILURE"})
"""The flow's last state change is the last event of a job's run."""


def is_last(event: Mapping[str, Any]) -> bool:
    return event["kind"] == FLOW_EVENT and event["data"].get("state") in FLOW_END_STATES


REDIS_RETRY_SECONDS = 2.0
REDIS_SOCKET_TIMEOUT = 5.0
REDIS_BLOCK_SECONDS = 2.0
"""A blocking read must end before the socket times out, or Redis would look down."""


@dataclasses.dataclass
class Event:
    job_id: int
    kind: str
    host: str | None
    data: dict[str, Any]
    uuid: str = dataclasses.field(default_factory=lambda: uuidlib.uuid4().hex)
    created_at: Any = dataclasses.field(default_factory=utcnow)
    seq: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {"seq": self.seq, "kind": self.kind, "host": self.host,
                "created_at": iso_utc(self.created_at),
                "data": self.data}


class Redactor:
    """Replaces known secret text (the job's decrypted secrets) wherever it would be stored."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self.needles = sorted({s for text in secrets for s in _needles(text)}, key=len,
                              reverse=True)

    def text(self, value: str) -> str:
        for needle in self.needles:
            if needle in value:
                value = value.replace(needle, "[REDACTED]")
        return value

    def value(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, list):
            return [self.value(item) for item in value]
        if isinstance(value, dict):
            return {key: self.value(item) for key, item in value.items()}
        return value


MIN_SECRET = 4
MIN_SECRET_LINE = 8


def sensitive_texts(variables: Mapping[str, Any], marked: Collection[str]) -> list[str]:
    """The texts of ``variables``' sensitive values — those named like a secret
    (``craton.names.is_sensitive_name``) or in ``marked`` — for a Redactor: a string as it
    is, a structured value as JSON and each string inside it."""
    texts: list[str] = []
    for key, value in variables.items():
        if key in marked or is_sensitive_name(key):
            texts.append(value if isinstance(value, str) else json.dumps(value))
            stack = [value] if isinstance(value, dict | list) else []
            while stack:
                item = stack.pop()
                if isinstance(item, str):
                    texts.append(item)
                elif isinstance(item, dict | list):
                    stack.extend(item.values() if isinstance(item, dict) else item)
    return texts


def _needles(secret: str) -> list[str]:
    """The whole secret (a password may be short), and each of its lines long enough to be
    unmistakable (a key's body lines)."""
    whole = secret.strip()
    lines = [line.strip() for line in secret.splitlines()]
    return ([whole] if len(whole) >= MIN_SECRET else []) + [
        line for line in lines if len(line) >= MIN_SECRET_LINE]


def clip(text: Any) -> str | None:
    if text is None:
        return None
    text = text if isinstance(text, str) else json.dumps(text, default=str)
    return text if len(text) <= MAX_TEXT else text[:MAX_TEXT] + "…"


class RedisLink:
    """The optional Redis connection; marks itself down on an error and retries later, so a
    Redis outage slows readers down instead of failing anything."""

    def __init__(self, url: str, max_len: int, prefix: str = "craton") -> None:
        import redis

        self.client = redis.Redis.from_url(url, socket_timeout=REDIS_SOCKET_TIMEOUT,
                                           socket_connect_timeout=2)
        self.max_len = max_len
        self.prefix = prefix
        self._down_until = 0.0

    def stream(self, job_id: int) -> str:
        return f"{self.prefix}:job:{job_id}:events"

    @property
    def up(self) -> bool:
        return time.monotonic() >= self._down_until

    def failed(self, error: Exception) -> None:
        if self.up:
            LOG.warning("Redis unavailable (%s); events are read from the database", error)
        self._down_until = time.monotonic() + REDIS_RETRY_SECONDS

    def publish(self, events: list[Event]) -> None:
        if not self.up:
            return
        import redis

        try:
            pipe = self.client.pipeline(transaction=False)
            for event in events:
                pipe.xadd(self.stream(event.job_id),
                          {"e": json.dumps(event.as_dict(), default=str)},
                          id=f"0-{event.seq}", maxlen=self.max_len, approximate=True)
            pipe.execute(raise_on_error=False)
        except redis.RedisError as error:
            self.failed(error)

    def read(self, job_id: int, after: int, timeout: float) -> list[dict[str, Any]] | None:
        """Entries of the job's stream after ``after``, waiting up to ``timeout``; None when
        Redis cannot answer."""
        if not self.up:
            return None
        import redis

        block = min(timeout, REDIS_BLOCK_SECONDS)
        try:
            found = self.client.xread({self.stream(job_id): f"0-{after}"}, count=1000,
                                      block=max(1, int(block * 1000)))
        except redis.RedisError as error:
            self.failed(error)
            return None
        return [json.loads(fields[b"e"]) for _, entries in found for _, fields in entries]

    def delete(self, job_ids: Iterable[int]) -> None:
        import redis

        keys = [self.stream(job_id) for job_id in job_ids]
        if keys and self.up:
            try:
                self.client.delete(*keys)
            except redis.RedisError as error:
                self.failed(error)


@dataclasses.dataclass
class HostProgress:
    """A host started a task: shown on the job's hosts, written with the next batch."""

    job_id: int
    host: str
    task: str | None
    at: Any = dataclasses.field(default_factory=utcnow)


_HOSTS = JobHost.__table__
_EVENTS = JobEvent.__table__
_PROGRESS = (
    sa_update(_HOSTS)
    .where(_HOSTS.c.job_id == bindparam("b_job"), _HOSTS.c.host_name == bindparam("b_host"),
           or_(_HOSTS.c.status == HostRunStatus.PENDING.value,
               _HOSTS.c.status == HostRunStatus.RUNNING.value))
    .values(status=HostRunStatus.RUNNING.value, current_task=bindparam("b_task"),
            started_at=func.coalesce(_HOSTS.c.started_at, bindparam("b_at")))
)
"""One statement for a batch of hosts' progress (executemany)."""


class EventSink:
    """Takes events (and hosts' progress) from any thread without blocking — Ansible must never
    wait for the database; a writer thread stores them in batches (events numbered per job),
    then publishes and wakes readers."""

    def __init__(self, db: Database, redis_link: RedisLink | None,
                 on_commit: Callable[[list[tuple[int, dict[str, Any]]]], None] | None = None, *,
                 batch: int = 1000, linger: float = 0.02) -> None:
        self.db = db
        self.redis = redis_link
        self.on_commit = on_commit
        self.batch = batch
        self.linger = linger
        self._queue: queue.SimpleQueue[Event | HostProgress | threading.Event | None] = \
            queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="craton-events", daemon=True)
        self._thread.start()

    def emit(self, event: Event) -> None:
        self._queue.put(event)

    def progress(self, update: HostProgress) -> None:
        self._queue.put(update)

    def flush(self, timeout: float = 30.0) -> None:
        """Return once every event emitted before the call is stored."""
        done = threading.Event()
        self._queue.put(done)
        done.wait(timeout)

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(10)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            pending: list[Event] = []
            progress: dict[tuple[int, str], HostProgress] = {}
            waiters: list[threading.Event] = []
            deadline = time.monotonic() + self.linger
            while True:
                if isinstance(item, threading.Event):
                    waiters.append(item)
                elif isinstance(item, HostProgress):
                    progress[(item.job_id, item.host)] = item
                elif item is None:
                    self._store(pending, progress)
                    for waiter in waiters:
                        waiter.set()
                    return
                else:
                    pending.append(item)
                if len(pending) >= self.batch:
                    break
                remaining = deadline - time.monotonic()
                try:
                    item = self._queue.get(timeout=max(remaining, 0)) if remaining > 0 else \
                        self._queue.get_nowait()
                except queue.Empty:
                    break
            self._store(pending, progress)
            for waiter in waiters:
                waiter.set()

    def _store(self, events: list[Event], progress: dict[Any, HostProgress]) -> None:
        if progress:
            try:
                self._store_progress(list(progress.values()))
            except Exception:
                LOG.exception("could not record the progress of %d hosts", len(progress))
        if not events:
            return
        try:
            stored = self._numbered(events)
        except IntegrityError:
            LOG.error("could not number %d job events after %d attempts", len(events),
                      NUMBERING_ATTEMPTS)
            return
        except Exception:
            LOG.exception("could not store %d job events", len(events))
            return
        if self.redis is not None:
            self.redis.publish(stored)
        if self.on_commit is not None:
            self.on_commit([(event.job_id, event.as_dict()) for event in stored])

    def _numbered(self, events: list[Event]) -> list[Event]:
        """Store ``events``, numbering them after the job's last. Another process may number
        events of the same job meanwhile (or an event may already be stored): then number
        again, leaving out what is there."""
        tries = 0

        def insert() -> list[Event]:
            nonlocal tries
            tries += 1
            return self._insert(events, skip_known=tries > 1)

        return tenacity.Retrying(
            retry=tenacity.retry_if_exception_type(IntegrityError),
            stop=tenacity.stop_after_attempt(NUMBERING_ATTEMPTS),
            wait=tenacity.wait_random_exponential(multiplier=0.01, max=0.2), reraise=True,
        )(insert)

    def _store_progress(self, updates: list[HostProgress]) -> None:
        """Hosts now running a task. Conditional, so a late update never overwrites a host
        that has meanwhile finished."""
        with self.db.connection() as connection:
            connection.execute(_PROGRESS, [
                {"b_job": u.job_id, "b_host": u.host, "b_task": u.task, "b_at": u.at}
                for u in updates])

    def _insert(self, events: list[Event], *, skip_known: bool) -> list[Event]:
        """Number and store ``events``. The unique (job, uuid) constraint refuses an event
        stored before; only then (``skip_known``, on a retry) are known uuids looked up."""
        by_job: dict[int, list[Event]] = defaultdict(list)
        for event in events:
            by_job[event.job_id].append(event)
        stored: list[Event] = []
        with self.db.connection() as connection:
            for job_id, job_events in by_job.items():
                known: set[str] = set()
                if skip_known:
                    for chunk in chunked([e.uuid for e in job_events]):
                        known.update(connection.scalars(select(_EVENTS.c.uuid).where(
                            _EVENTS.c.job_id == job_id, _EVENTS.c.uuid.in_(chunk))))
                last = connection.scalar(select(func.max(_EVENTS.c.seq))
                                         .where(_EVENTS.c.job_id == job_id)) or 0
                rows = []
                for event in job_events:
                    if event.uuid in known:
                        continue
                    known.add(event.uuid)
                    last += 1
                    event.seq = last
                    rows.append({"job_id": job_id, "seq": event.seq, "uuid": event.uuid,
                                 "created_at": event.created_at, "kind": event.kind,
                                 "host": event.host,
                                 "data_json": canonical_json(event.data)})
                    stored.append(event)
                if rows:
                    connection.execute(insert(_EVENTS), rows)
        return stored


def event_row(row: JobEvent) -> dict[str, Any]:
    return {"seq": row.seq, "kind": row.kind, "host": row.host,
            "created_at": iso_utc(row.created_at),
            "data": json.loads(row.data_json)}


class EventFeed:
    """Reads a job's events after a sequence number from the database, the record."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def after(self, job_id: int, after: int, limit: int = 500) -> list[dict[str, Any]]:
        with self.db.transaction(write=False) as session:
            rows = session.scalars(select(JobEvent).where(
                JobEvent.job_id == job_id, JobEvent.seq > after)
                .order_by(JobEvent.seq).limit(limit)).all()
            return [event_row(row) for row in rows]

    def latest(self, job_id: int, limit: int) -> list[dict[str, Any]]:
        """The job's last ``limit`` events, oldest first."""
        with self.db.transaction(write=False) as session:
            rows = session.scalars(select(JobEvent).where(JobEvent.job_id == job_id)
                                   .order_by(JobEvent.seq.desc()).limit(limit)).all()
            return [event_row(row) for row in reversed(rows)]
