"""The distributed engine, API side: each job is posted to a TaskFlow jobboard in Redis, and
``craton-worker`` processes (``craton.jobs.worker``) claim and run it.

A flow's state lives in the SQL database (TaskFlow's persistence), so any worker can run any
job, and a job whose worker died resumes where it stopped. A claim lasts ``[jobs]
claim_expiry`` seconds and the worker's heartbeat renews it while the job runs: when a worker
dies — even by SIGKILL — its claim lapses and another worker claims the job within seconds.
The task that was running then runs again, for its hosts not finished yet.

Redis layout: the board keeps its keys under ``<[redis] prefix>:jobboard:`` — the listing of
posted jobs, and one ``….owned`` key per claimed job holding the worker's name — so
installations sharing one Redis (each with its own prefix) never see each other's jobs.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from sqlalchemy import select
from taskflow import exceptions as taskflow_errors

from craton.config import without_password
from craton.db.models import Job, JobStatus
from craton.jobs.results import fail_unfinished
from craton.jobs.runtime import JobRuntime
from craton.jobs.store import logbook_for, store_for
from craton.jobs.taskflow_adapter import ExpiringClaimsBoard

LOG = logging.getLogger(__name__)


def job_id_of(job: Any) -> int | None:
    """The Craton job a jobboard entry stands for (None: not one of ours)."""
    job_id = (job.details or {}).get("job_id")
    return job_id if isinstance(job_id, int) else None


def make_board(rt: JobRuntime) -> ExpiringClaimsBoard:
    if not rt.settings.redis.url:
        raise RuntimeError("the distributed engine needs [redis] url")
    board = ExpiringClaimsBoard(rt.settings.redis.url, rt.settings.jobs.claim_expiry,
                                prefix=rt.settings.redis.prefix,
                                persistence=rt.taskflow_backend())
    board.connect()
    return board


def posted(board: ExpiringClaimsBoard) -> dict[int, Any]:
    """The jobs on the board, by Craton job id."""
    return {job_id: job for job in board.jobs() if (job_id := job_id_of(job)) is not None}


class DistributedEngine:
    """Posts jobs to the jobboard; ``craton-worker`` processes run them."""

    name = "distributed"
    POLL = 0.2

    def __init__(self, rt: JobRuntime) -> None:
        self.rt = rt
        self._board: ExpiringClaimsBoard | None = None
        self._lock = threading.Lock()

    def board(self) -> ExpiringClaimsBoard:
        with self._lock:
            if self._board is None:
                self._board = make_board(self.rt)
            return self._board

    def submit(self, job_id: int) -> None:
        """Post the job (its logbook carries the flow's factory). A job that cannot be posted
        fails at once, saying why, instead of waiting forever."""
        book, flow_detail = logbook_for(self.rt, job_id)
        try:
            self.board().post(f"job-{job_id}", book=book, details={
                "job_id": job_id, "flow_uuid": flow_detail.uuid,
                "store": store_for(self.rt, job_id)})
        except (taskflow_errors.JobFailure, taskflow_errors.StorageFailure) as error:
            LOG.error("could not post job %s to the jobboard: %s", job_id, error)
            with self._lock:
                self._board = None
            where = without_password(self.rt.settings.redis.url)
            fail_unfinished(self.rt, job_id, RuntimeError(
                f"it could not be posted to the jobboard at {where}: {error}"))

    def wait(self, job_id: int, timeout: float | None = None) -> None:
        """Return once the job has finished (whichever worker ran it); TimeoutError after
        ``timeout`` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with self.rt.db.transaction(write=False) as session:
                status = session.scalar(select(Job.status).where(Job.id == job_id))
            if status is None or JobStatus(status).finished:
                return
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"job {job_id} did not finish within {timeout} s")
            time.sleep(self.POLL)

    def claimed_by(self, job_id: int) -> str | None:
        """The worker holding the job now (None: unclaimed, or no longer on the board)."""
        board = self.board()
        job = posted(board).get(job_id)
        return board.owner(job) if job is not None else None

    def resume_interrupted(self) -> list[int]:
        """Nothing to do here: workers take over interrupted jobs from the board."""
        return []

    def close(self) -> None:
        with self._lock:
            if self._board is not None:
                self._board.close()
                self._board = None
