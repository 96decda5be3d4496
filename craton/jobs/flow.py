"""A job's TaskFlow flow — built by ``build_flow``, the factory TaskFlow records and every
engine calls to run or resume a job — and the listener that turns its state changes into the
job's events."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select
from taskflow.patterns import linear_flow

from craton.db.models import JobHost, JobLayout
from craton.jobs.events import FLOW_EVENT
from craton.jobs.plan import waves
from craton.jobs.runtime import JobRuntime, runtime
from craton.jobs.taskflow_adapter import StateListener
from craton.jobs.tasks import FetchSource, Materialize, RunHosts, StartJob, Summarize


def build_flow(job_id: int, runtime_key: str) -> linear_flow.Flow:
    """The flow of a job: the same tasks, with the same names, every time it is built."""
    rt = runtime(runtime_key)
    job = rt.load_job(job_id)
    with rt.db.transaction(write=False) as session:
        hosts = list(session.scalars(select(JobHost.host_name).where(JobHost.job_id == job_id)
                                     .order_by(JobHost.host_name)))
    flow = linear_flow.Flow(f"job-{job_id}")
    flow.add(StartJob(), Materialize(), FetchSource())
    if job.layout == JobLayout.ANSIBLE:
        flow.add(RunHosts(0, 1, hosts, gated=False))
    else:
        planned = waves(json.loads(job.plan_json), hosts)
        flow.add(*(RunHosts(index, len(planned), wave, gated=True)
                   for index, wave in enumerate(planned)))
    flow.add(Summarize())
    return flow


class JobEventListener(StateListener):
    """TaskFlow state changes of a job's flow and tasks, as job events."""

    def __init__(self, engine: Any, rt: JobRuntime, job_id: int) -> None:
        super().__init__(engine)
        self.rt = rt
        self.job_id = job_id

    def on_flow(self, state: str, details: dict[str, Any]) -> None:
        self.rt.emit(self.job_id, FLOW_EVENT, None,
                     {"flow": details.get("flow_name"), "state": state})

    def on_task(self, state: str, details: dict[str, Any]) -> None:
        self.rt.emit(self.job_id, "taskflow.task", None,
                     {"task": details.get("task_name", ""), "state": state})
