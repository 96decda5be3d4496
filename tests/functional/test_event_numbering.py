"""Numbering a job's events: a batch that collides with what is stored (an event stored
before, as when a crashed process's batch is sent again) is numbered again without the events
already there; the record keeps each event once, numbered without gaps."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from craton.jobs.events import Event, EventSink
from tests.functional.job_helpers import (
    JobApp,
    events,
    finished_job,
    make_fleet,
    sqlite_app,
)


@pytest.fixture
def japp(tmp_path: Path) -> Iterator[JobApp]:
    with sqlite_app(tmp_path / "data") as built:
        yield built


def test_an_event_sent_again_is_kept_once_and_the_rest_numbered_after_it(japp: JobApp) -> None:
    fleet = make_fleet(japp.client, ["n1"])
    job = finished_job(japp.client, fleet.region_id)
    before = events(japp.client, job["id"])
    sink = EventSink(japp.db, None)
    try:
        first = Event(job["id"], "note", "n1", {"n": 1})
        sink.emit(first)
        sink.flush()
        again = Event(job["id"], "note", "n1", {"n": 1}, uuid=first.uuid)
        second = Event(job["id"], "note", "n1", {"n": 2})
        sink.emit(again)
        sink.emit(second)
        sink.flush()
    finally:
        sink.close()
    after = events(japp.client, job["id"])[len(before):]
    assert [(event["kind"], event["data"]) for event in after] == [
        ("note", {"n": 1}), ("note", {"n": 2})]
    assert [event["seq"] for event in after] == [
        before[-1]["seq"] + 1, before[-1]["seq"] + 2]
