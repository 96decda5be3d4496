"""Where TaskFlow keeps a job's flow: a logbook per job in Craton's own database (tables our
migrations make), with a fixed id so any process finds it again."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Sequence
from typing import Any

from taskflow import engines
from taskflow import exceptions as taskflow_errors
from taskflow.persistence import models as taskflow_models

from craton.jobs.flow import build_flow
from craton.jobs.runtime import JobRuntime

NAMESPACE = uuid.UUID("6f1f3c1e-7a55-4f5e-9a3b-6d2a0c8e4b11")


def book_uuid(job_id: int) -> str:
    return str(uuid.uuid5(NAMESPACE, f"craton-job-{job_id}"))


def store_for(rt: JobRuntime, job_id: int) -> dict[str, Any]:
    """What every task of the job is given: how to find this process's runtime, and the job."""
    return {"runtime_key": rt.key, "job_id": job_id}


def logbook_for(rt: JobRuntime, job_id: int) -> tuple[Any, Any]:
    """The job's logbook and flow detail, created (with the factory that builds the flow) the
    first time."""
    backend = rt.taskflow_backend()
    with contextlib.closing(backend.get_connection()) as connection:
        try:
            book = connection.get_logbook(book_uuid(job_id))
        except taskflow_errors.NotFound:
            book = taskflow_models.LogBook(f"job-{job_id}", uuid=book_uuid(job_id))
            flow_detail = taskflow_models.FlowDetail(f"job-{job_id}", uuid=str(uuid.uuid4()))
            book.add(flow_detail)
            engines.save_factory_details(flow_detail, build_flow, (),
                                         {"job_id": job_id, "runtime_key": rt.key})
            connection.save_logbook(book)
        flow_detail = next(iter(book))
    return book, flow_detail


def forget(rt: JobRuntime, job_ids: Sequence[int]) -> None:
    """Drop what TaskFlow and Redis still hold of deleted jobs."""
    backend = rt.taskflow_backend()
    with contextlib.closing(backend.get_connection()) as connection:
        for job_id in job_ids:
            with contextlib.suppress(taskflow_errors.NotFound):
                connection.destroy_logbook(book_uuid(job_id))
    if rt.redis is not None:
        rt.redis.delete(job_ids)
