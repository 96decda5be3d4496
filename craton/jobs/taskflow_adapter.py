"""Every use of TaskFlow beyond its public API, in one place.

Craton needs three things TaskFlow has no public hook for: jobboard claims that expire unless
renewed (a worker killed with SIGKILL must not hold its job forever), a conductor whose
dispatch Craton can wrap (heartbeats, suspension, handing a job back), and listeners that see
flow and task state changes. Each is a small subclass here that turns TaskFlow's private
methods and attributes into public, named ones; the rest of Craton uses only those.
``tests/unit/test_taskflow_contract.py`` checks that TaskFlow still has everything used here,
with the same signatures, so an upgrade that changes them fails loudly instead of quietly.
"""

from __future__ import annotations

import enum
from typing import Any

from redis import maint_notifications
from taskflow.conductors.backends import impl_nonblocking
from taskflow.jobs.backends import impl_redis
from taskflow.listeners import base as listeners
from taskflow.utils import redis_utils


def redis_client(url: str) -> redis_utils.RedisClient:
    """A client as TaskFlow's jobboard wants it (one that refuses use once closed), from a
    redis:// URL; without the maintenance-notification probe redis-py 8 sends on every new
    connection, which Redis before 8 does not know."""
    return redis_utils.RedisClient.from_url(
        url, socket_timeout=5, socket_connect_timeout=5,
        maint_notifications_config=maint_notifications.MaintNotificationsConfig(enabled=False))


class Renewal(enum.Enum):
    RENEWED = "renewed"
    """The claim was ours and lasts another claim_expiry seconds."""
    RECLAIMED = "reclaimed"
    """The claim had lapsed and nobody else had taken the job: it is ours again."""
    LOST = "lost"
    """Another worker holds the job now."""
    GONE = "gone"
    """The job is no longer on the board."""


RENEW_SCRIPT = """
local owner = redis.call("get", KEYS[1])
if owner == ARGV[1] then
    redis.call("pexpire", KEYS[1], ARGV[3])
    return 1
end
if owner then
    return -1
end
if redis.call("hexists", KEYS[2], ARGV[2]) == 1 then
    redis.call("set", KEYS[1], ARGV[1], "PX", ARGV[3])
    return 2
end
return 0
"""
RENEWALS = {1: Renewal.RENEWED, 2: Renewal.RECLAIMED, -1: Renewal.LOST, 0: Renewal.GONE}


class ExpiringClaimsBoard(impl_redis.RedisJobBoard):
    """TaskFlow's Redis jobboard whose claims expire unless renewed (TaskFlow's never expire by
    default), keeping its keys under ``<prefix>:jobboard``."""

    def __init__(self, url: str, claim_expiry: float, *, prefix: str,
                 persistence: Any = None) -> None:
        super().__init__(prefix, {"namespace": f"{prefix}:jobboard", "url": url},
                         persistence=persistence)
        self.claim_expiry = claim_expiry
        self._renew: Any = None

    @classmethod
    def _make_client(cls, conf: dict[str, Any]) -> redis_utils.RedisClient:
        return redis_client(conf["url"])

    def connect(self) -> None:
        super().connect()
        self._renew = self._client.register_script(RENEW_SCRIPT)

    def claim(self, job: Any, who: str, expiry: float | None = None) -> None:
        super().claim(job, who, expiry=self.claim_expiry if expiry is None else expiry)

    def renew(self, job: Any, who: str) -> Renewal:
        """Extend our claim on ``job`` — atomically, only while it is still ours (extending a
        claim that lapsed meanwhile would extend another worker's)."""
        with impl_redis._translate_failures():
            found = self._renew(keys=[job.owner_key, self.listings_key],
                                args=[self._encode_owner(who), job.key,
                                      int(self.claim_expiry * 1000)])
        return RENEWALS[int(found)]

    def owner(self, job: Any) -> str | None:
        """Who holds ``job``, or None (``find_owner`` fails on an unclaimed job)."""
        with impl_redis._translate_failures():
            raw = self._client.get(job.owner_key)
        return self._decode_owner(raw) if raw else None

    def jobs(self) -> list[Any]:
        """Every job on the board, claimed or not."""
        return list(self._fetch_jobs())


class HookedConductor(impl_nonblocking.NonBlockingConductor):
    """TaskFlow's non-blocking conductor with public hooks around what it does per job.
    Subclasses override ``dispatch``, ``engine_for``, ``listeners_for`` and ``may_finish``."""

    @property
    def worker_name(self) -> str:
        return self._name

    @property
    def persistence(self) -> Any:
        return self._persistence

    @property
    def stopping(self) -> bool:
        """Whether ``stop()`` was called (jobs dispatched from now on should not start)."""
        return bool(self._wait_timeout.is_stopped())

    def dispatch(self, job: Any) -> bool:
        """Run one claimed job: True to consume it, False to abandon it (to whoever claims it
        next). The default runs it as TaskFlow does (``run_claimed``)."""
        return self.run_claimed(job)

    def run_claimed(self, job: Any) -> bool:
        return bool(super()._dispatch_job(job))

    def flow_detail_of(self, job: Any) -> Any:
        return self._flow_detail_from_job(job)

    def engine_for(self, job: Any) -> Any:
        """The engine that runs ``job`` (TaskFlow's own by default)."""
        return super()._engine_from_job(job)

    def listeners_for(self, job: Any, engine: Any) -> list[Any]:
        """Listeners attached to ``engine`` besides TaskFlow's own."""
        return []

    def may_finish(self, job: Any) -> bool:
        """Whether this conductor may consume or abandon ``job`` now."""
        return True

    def _dispatch_job(self, job: Any) -> bool:
        return self.dispatch(job)

    def _engine_from_job(self, job: Any) -> Any:
        return self.engine_for(job)

    def _listeners_from_job(self, job: Any, engine: Any) -> list[Any]:
        return [*super()._listeners_from_job(job, engine), *self.listeners_for(job, engine)]

    def _try_finish_job(self, job: Any, consume: bool, trash: bool = False) -> None:
        if self.may_finish(job):
            super()._try_finish_job(job, consume, trash)


class StateListener(listeners.Listener):
    """A listener told each state change of a flow and of its tasks."""

    def on_flow(self, state: str, details: dict[str, Any]) -> None:
        """The flow entered ``state``."""

    def on_task(self, state: str, details: dict[str, Any]) -> None:
        """A task (``details["task_name"]``) entered ``state``."""

    def _flow_receiver(self, state: str, details: dict[str, Any]) -> None:
        self.on_flow(state, details)

    def _task_receiver(self, state: str, details: dict[str, Any]) -> None:
        self.on_task(state, details)
