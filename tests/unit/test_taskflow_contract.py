"""What ``craton.jobs.taskflow_adapter`` relies on in TaskFlow beyond its public API.

The adapter overrides and calls private methods and attributes of TaskFlow's Redis jobboard,
its non-blocking conductor and its listener base. Nothing in TaskFlow promises to keep them,
so this test names each one with the signature the adapter was written against: when an
upgrade renames or reshapes one, it fails here, saying which, instead of jobs quietly losing
their heartbeats, hooks or events.
"""

from __future__ import annotations

import inspect
from typing import Any

import pytest
from redis import exceptions as redis_errors
from taskflow import engines, task
from taskflow import exceptions as taskflow_errors
from taskflow.conductors.backends import impl_nonblocking
from taskflow.jobs.backends import impl_redis
from taskflow.listeners import base as listeners
from taskflow.patterns import linear_flow
from taskflow.utils import misc

from craton.jobs.taskflow_adapter import ExpiringClaimsBoard, HookedConductor, StateListener

BOARD = impl_redis.RedisJobBoard
CONDUCTOR = impl_nonblocking.NonBlockingConductor

METHODS = [
    # (owner, name, parameters after self/cls, how it is defined)
    (BOARD, "__init__", ["name", "conf", "client", "persistence"], "function"),
    (BOARD, "_make_client", ["conf"], "classmethod"),
    (BOARD, "_encode_owner", ["text", "encoding", "errors"], "staticmethod"),
    (BOARD, "_decode_owner", ["data", "encoding", "errors"], "staticmethod"),
    (BOARD, "_fetch_jobs", [], "function"),
    (BOARD, "claim", ["job", "who", "expiry"], "function"),
    (BOARD, "connect", [], "function"),
    (CONDUCTOR, "__init__", ["name", "jobboard", "persistence", "engine", "engine_options",
                             "wait_timeout", "log", "max_simultaneous_jobs",
                             "executor_factory"], "function"),
    (CONDUCTOR, "_dispatch_job", ["job"], "function"),
    (CONDUCTOR, "_engine_from_job", ["job"], "function"),
    (CONDUCTOR, "_listeners_from_job", ["job", "engine"], "function"),
    (CONDUCTOR, "_try_finish_job", ["job", "consume", "trash"], "function"),
    (CONDUCTOR, "_flow_detail_from_job", ["job"], "function"),
    (listeners.Listener, "_flow_receiver", ["state", "details"], "function"),
    (listeners.Listener, "_task_receiver", ["state", "details"], "function"),
]


@pytest.mark.parametrize(("owner", "name", "parameters", "kind"), METHODS,
                         ids=[f"{o.__name__}.{n}" for o, n, _, _ in METHODS])
def test_taskflow_still_has_the_method(owner: type, name: str, parameters: list[str],
                                       kind: str) -> None:
    found = next((vars(cls)[name] for cls in owner.__mro__ if name in vars(cls)), None)
    assert found is not None, f"TaskFlow's {owner.__name__} has no {name} any more"
    assert type(found).__name__ == kind, f"{owner.__name__}.{name} is a {type(found)}"
    signature = inspect.signature(getattr(owner, name))
    names = [p for p in signature.parameters if p not in ("self", "cls")]
    assert names == parameters, f"{owner.__name__}.{name}{signature} changed"


def test_the_properties_the_board_reads_are_still_there() -> None:
    assert isinstance(inspect.getattr_static(BOARD, "listings_key"), misc.cachedproperty)
    for name in ("owner_key", "key"):
        assert isinstance(inspect.getattr_static(impl_redis.RedisJob, name), property), name
    with pytest.raises(taskflow_errors.JobFailure), impl_redis._translate_failures():
        raise redis_errors.ConnectionError("down")


def test_the_attributes_the_conductor_reads_are_set() -> None:
    """Built as a worker builds it (no Redis is reached until ``connect``)."""
    board = ExpiringClaimsBoard("redis://127.0.0.1:1/0", 3, prefix="contract")
    assert hasattr(board, "_client")
    conductor = HookedConductor("contract-worker", board, persistence="nothing",
                                engine="serial", wait_timeout=0.01)
    assert conductor.worker_name == "contract-worker"
    assert conductor.persistence == "nothing"
    assert conductor.stopping is False
    conductor.stop()
    assert conductor.stopping is True


class Noted(task.Task):
    def execute(self) -> None:
        """Nothing: the test watches its states."""


class Recorder(StateListener):
    def __init__(self, engine: Any) -> None:
        super().__init__(engine)
        self.seen: list[tuple[str, str]] = []

    def on_flow(self, state: str, details: dict[str, Any]) -> None:
        self.seen.append(("flow", state))

    def on_task(self, state: str, details: dict[str, Any]) -> None:
        self.seen.append((details["task_name"], state))


def test_a_state_listener_hears_the_flow_and_its_tasks() -> None:
    engine = engines.load(linear_flow.Flow("contract").add(Noted("noted")), engine="serial")
    recorder = Recorder(engine)
    with recorder:
        engine.run()
    assert ("flow", "RUNNING") in recorder.seen and ("flow", "SUCCESS") in recorder.seen
    assert ("noted", "RUNNING") in recorder.seen and ("noted", "SUCCESS") in recorder.seen
