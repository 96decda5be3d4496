"""Many watchers of one job: each gets every event once, in order, from one shared channel; a
caller (and a server) holds only so many streams open, and a closed stream frees its place."""

from __future__ import annotations

import concurrent.futures
import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest

from craton.config import ApiSettings
from tests.conftest import error_of
from tests.functional.job_helpers import (
    JobApp,
    PlaybookRepo,
    Stream,
    app_on,
    events,
    job_body,
    job_settings,
    make_fleet,
    play,
    read_stream,
    submit,
    wait_job,
)

STEPS = play(*[f"""
name: step {index}
ansible.builtin.command: "true"
changed_when: false
""" for index in range(6)])


@pytest.fixture
def japp(tmp_path: Path) -> Iterator[JobApp]:
    from craton.db import migrate
    from craton.db.session import Database

    data = tmp_path / "data"
    data.mkdir()
    db = Database(f"sqlite:///{data / 'craton.db'}")
    migrate.upgrade(db.engine)
    settings = job_settings(data)
    settings = dataclasses.replace(settings, api=ApiSettings(max_streams=40,
                                                             max_streams_per_caller=30))
    with app_on(db, settings) as built:
        yield built
    db.dispose()


def test_thirty_watchers_each_see_the_whole_job(japp: JobApp) -> None:
    """Thirty readers open the stream of one job at once (some from the start, some from the
    middle): every one of them gets each event once, numbered without gaps, and the end —
    the same events the record holds."""
    api = japp.client
    fleet = make_fleet(api, [f"h{index}" for index in range(4)])
    repo = PlaybookRepo(japp.sources_of(fleet.tenant) / "steps.git")
    repo.push({"site.yml": STEPS})
    job = submit(api, job_body(fleet, "site.yml", repo.source(), layout="ansible"))
    starts = [None if index % 3 else 5 for index in range(30)]
    with concurrent.futures.ThreadPoolExecutor(30) as pool:
        streams: list[Stream] = list(pool.map(
            lambda start: read_stream(api, job["id"], last_event_id=start), starts))
    record = events(api, job["id"])
    assert wait_job(api, job["id"])["status"] == "succeeded"
    for start, stream in zip(starts, streams, strict=True):
        first = (start or 0) + 1
        assert stream.end == {"status": "succeeded", "last": len(record)}, stream.end
        assert stream.ids == list(range(first, len(record) + 1))
        assert stream.events == record[first - 1:]
    assert japp.app.extensions["craton"].jobs.runtime.hub.open_streams == 0


def test_a_caller_over_its_stream_limit_gets_429_until_one_closes(japp: JobApp) -> None:
    """Thirty streams of one caller are as many as [api] max_streams_per_caller allows: the
    thirty-first answers 429 with Retry-After and says which limit; another caller may still
    open one; closing one lets the first caller open another."""
    api = japp.client
    fleet = make_fleet(api, ["h1"])
    job = submit(api, {"region_id": fleet.region_id, "playbook": "craton:ping"})
    wait_job(api, job["id"])
    sse = {"Accept": "text/event-stream", "Last-Event-ID": "0"}
    held = []
    try:
        for _ in range(30):
            response = api.get(f"/v1/jobs/{job['id']}/events", headers=sse)
            assert response.status_code == 200
            held.append(response)
        refused = api.get(f"/v1/jobs/{job['id']}/events", headers=sse)
        assert refused.status_code == 429
        assert refused.headers["Retry-After"]
        assert "max_streams_per_caller" in error_of(refused)["message"]
        other = api.get(f"/v1/jobs/{job['id']}/events",
                        headers={**sse, "X-Craton-User": "someone-else"})
        assert other.status_code == 200
        held.append(other)
        held.pop(0).close()
        again = api.get(f"/v1/jobs/{job['id']}/events", headers=sse)
        assert again.status_code == 200
        held.append(again)
    finally:
        for response in held:
            response.close()
    assert japp.app.extensions["craton"].jobs.runtime.hub.open_streams == 0


def test_the_server_limit_holds_across_callers(japp: JobApp) -> None:
    """[api] max_streams (40 here) is the most one server holds open, whoever asks."""
    api = japp.client
    fleet = make_fleet(api, ["h1"])
    job = submit(api, {"region_id": fleet.region_id, "playbook": "craton:ping"})
    wait_job(api, job["id"])
    held = []
    try:
        for index in range(40):
            response = api.get(f"/v1/jobs/{job['id']}/events",
                               headers={"Accept": "text/event-stream",
                                        "X-Craton-User": f"user{index}"})
            assert response.status_code == 200
            held.append(response)
        refused = api.get(f"/v1/jobs/{job['id']}/events",
                          headers={"Accept": "text/event-stream", "X-Craton-User": "late"})
        assert refused.status_code == 429
        assert "max_streams" in error_of(refused)["message"]
    finally:
        for response in held:
            response.close()
