"""/v1/jobs: run playbooks over a selection of a region; follow them host by host and event by
event (a page at a time, or live as Server-Sent Events)."""

from __future__ import annotations

import re
from typing import Any

from flask import Response, request
from flask.views import MethodView
from sqlalchemy import select

from craton.api.common import (
    Blueprint,
    context,
    db_session,
    next_link,
    page_size,
    paginate,
    release_session,
    services,
)
from craton.api.v1 import schemas
from craton.db.models import MAX_ID, Host, Job, JobHost
from craton.db.scope import get_scoped, scoped_select
from craton.errors import invalid
from craton.jobs import queries
from craton.jobs.submit import JobRequest, request_cancel, submit_job

blp = Blueprint("jobs", __name__, url_prefix="/v1",
                description="Jobs: a playbook run over a selection of a region, with per-host "
                            "results and every event, live.")

EVENT_ID = re.compile(r"[0-9]{1,19}")


def _job(job_id: int) -> Job:
    return get_scoped(db_session(), context(), Job, job_id)


def _shown(job: Job, status: int = 200, **headers: str) -> tuple[Any, int, dict[str, str]]:
    [view] = queries.job_views(db_session(), [job])
    return view, status, {"ETag": f'"{job.version}"', **headers}


@blp.route("/jobs")
class Jobs(MethodView):
    @blp.arguments(schemas.JobListArgs, location="query")
    @blp.response(200, schemas.JobList)
    def get(self, args: dict[str, Any]) -> Any:
        """List jobs, newest first (filter by region and status)"""
        stmt = scoped_select(context(), Job)
        if args.get("region_id") is not None:
            stmt = stmt.where(Job.region_id == args["region_id"])
        if args.get("status"):
            stmt = stmt.where(Job.status.in_(args["status"]))
        page = paginate(stmt, Job.id, args, newest_first=True)
        return {"items": queries.job_views(db_session(), page.items), "next": page.next}

    @blp.arguments(schemas.JobCreateSchema)
    @blp.response(202, schemas.JobSchema)
    @blp.doc(responses={"403": schemas.error_response(
        "The caller may not submit jobs (jobs:submit), or may not use the secrets the "
        "selected hosts hold (secrets:use; the message names the hosts): ask for "
        '"secrets": "omit" to run without them.'), "429": schemas.error_response(
        "As many of the tenant's jobs are pending or running as its concurrent_jobs quota "
        "allows.", **{"Retry-After": "Seconds to wait before trying again."})})
    def post(self, data: dict[str, Any]) -> Any:
        """Start a job: pinned (source commit, hosts, plan) now, run by the engine"""
        shared = services()
        settings = shared.settings.jobs
        source = data["source"]
        job = submit_job(
            db_session(), context(),
            JobRequest(region_id=data["region_id"], playbook=data["playbook"],
                       filters=data["filters"], source_url=source.get("url"),
                       source_ref=source.get("ref"), source_path=source.get("path"),
                       layout=data["layout"], forks=data.get("forks"), check=data["check"],
                       diff=data["diff"], extra_vars=data["extra_vars"],
                       omit_secrets=data["secrets"] == "omit"),
            fetcher=shared.fetcher, engine=settings.engine,
            default_forks=settings.default_forks, max_forks=settings.max_forks,
            limits=shared.settings.limits, quotas=shared.settings.quotas)
        db_session().commit()
        shared.jobs.engine.submit(job.id)
        return _shown(job, 202, Location=f"/v1/jobs/{job.id}")


@blp.route("/jobs/<int:job_id>")
class JobItem(MethodView):
    @blp.response(200, schemas.JobSchema)
    def get(self, job_id: int) -> Any:
        """Show a job: status, hosts per state, progress, timings"""
        return _shown(_job(job_id))


@blp.route("/jobs/<int:job_id>/cancel")
class JobCancel(MethodView):
    @blp.response(202, schemas.JobSchema)
    def post(self, job_id: int) -> Any:
        """Cancel a job: running hosts stop within seconds, the rest are skipped"""
        job = request_cancel(db_session(), context(), _job(job_id))
        if not job.status.finished:
            services().jobs.runtime.emit(job.id, "job", None,
                                         {"cancel_requested_by": context().user})
        return _shown(job, 202)


@blp.route("/jobs/<int:job_id>/hosts")
class JobHosts(MethodView):
    @blp.arguments(schemas.JobHostListArgs, location="query")
    @blp.response(200, schemas.JobHostList)
    def get(self, args: dict[str, Any], job_id: int) -> Any:
        """Each host of a job: its state, current task and Ansible's last message"""
        job = _job(job_id)
        stmt = select(JobHost).where(JobHost.job_id == job.id)
        if args.get("status"):
            stmt = stmt.where(JobHost.status.in_(args["status"]))
        page = paginate(stmt, JobHost.host_name, args, key="host_name")
        return {"items": queries.job_host_views(db_session(), page.items), "next": page.next}


@blp.route("/jobs/<int:job_id>/events")
class JobEvents(MethodView):
    @blp.arguments(schemas.JobEventArgs, location="query")
    @blp.response(200, schemas.JobEventList)
    @blp.doc(responses={"200": {
        "description": "A page of events (JSON); with Accept: text/event-stream, the live "
                       "stream: each event as `id: <seq>` + `data: <json>`, ending with "
                       "`event: end` (reconnect with Last-Event-ID to resume).",
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/JobEventList"}},
            "text/event-stream": {"schema": {"type": "string"}},
        }}})
    def get(self, args: dict[str, Any], job_id: int) -> Any:
        """A page of a job's events after a sequence number, or the live stream (SSE)"""
        job = _job(job_id)
        after = args["after"]
        if "text/event-stream" in request.headers.get("Accept", ""):
            last = request.headers.get("Last-Event-ID", "").strip()
            if last:
                # ASCII digits only (str.isdigit also takes "²"), and no more than an event
                # number can be (a longer one would overflow the database's integer).
                if not EVENT_ID.fullmatch(last) or int(last) > MAX_ID:
                    raise invalid({"Last-Event-ID": "must be an event sequence number "
                                                    f"(0 to {MAX_ID})"})
                after = int(last)
            caller = f"{context().tenant_id or '*'}/{context().user}"
            release_session()
            stream = services().jobs.runtime.hub.open(job.id, after, caller)
            return Response(stream, mimetype="text/event-stream",
                            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        limit = page_size(args.get("limit"))
        events = services().jobs.runtime.feed.after(job.id, after, limit + 1)
        more = len(events) > limit
        events = events[:limit]
        return {"items": events,
                "next": next_link(events[-1]["seq"], "after") if more else None}


@blp.route("/hosts/<int:host_id>/jobs")
class HostJobs(MethodView):
    @blp.arguments(schemas.PageArgs, location="query")
    @blp.response(200, schemas.HostJobList)
    def get(self, args: dict[str, Any], host_id: int) -> Any:
        """A host's jobs, newest first, each with what became of the host in it"""
        host = get_scoped(db_session(), context(), Host, host_id)
        limit = page_size(args.get("limit"))
        rows = queries.host_jobs(db_session(), host.id, limit=limit + 1, before=args.get("marker"))
        return {"items": rows[:limit],
                "next": next_link(rows[limit - 1].job.id) if len(rows) > limit else None}


@blp.route("/hosts/<int:host_id>/status")
class HostStatus(MethodView):
    @blp.response(200, schemas.HostStatusSchema)
    def get(self, host_id: int) -> Any:
        """Where a host is at: its last job, the task it is in or stopped at, the result"""
        host = get_scoped(db_session(), context(), Host, host_id)
        return queries.host_status(db_session(), host)
