"""Live event streams: every watcher of a job reads one shared channel, fed once.

A job's progress page, a CLI ``--watch`` and a script may all follow the same job, hundreds at
once. Each watcher holds a server thread for as long as it watches, so a watcher must cost
almost nothing while it waits: a watched job has one ``Channel`` per process, which keeps its
latest events already encoded as Server-Sent Events. The channel is fed by this process's event
sink the moment events are committed (jobs running here) and by one feeder thread that reads
the job's Redis stream or, without Redis, polls the database (jobs running elsewhere, and as a
safety net for everything) — one reader per job, not one per watcher. A watcher that starts
behind the channel's buffer (it reconnects with an old ``Last-Event-ID``, or opens a finished
job) catches up from the database, a page at a time, then follows the channel.

Writes are coalesced: a watcher sends at most one batch every ``COALESCE_SECONDS``, so a burst
of events costs each watcher one wake-up, not one per event.

Streams are capped per process (``[api] max_streams``) and per caller
(``[api] max_streams_per_caller``): beyond them, 429 with ``Retry-After``.
"""

from __future__ import annotations

import collections
import contextlib
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from sqlalchemy import select

from craton.db.models import Job
from craton.db.session import Database
from craton.errors import CratonError
from craton.jobs.events import EventFeed, RedisLink, is_last
from craton.values import utcnow

LOG = logging.getLogger(__name__)

KEEPALIVE_SECONDS = 15.0
COALESCE_SECONDS = 0.05
BUFFER_EVENTS = 5000
"""Events a channel keeps; a watcher further behind reads the database."""
LOCAL_POLL_SECONDS = 1.0
"""How often the feeder of a job running in this process checks the database anyway."""
REMOTE_POLL_SECONDS = 0.25
QUIET_SECONDS = 30.0
"""A finished job whose flow's last event never came (its process died) ends its streams
this long after it finished."""
RETRY_MILLISECONDS = 2000
CATCH_UP_READERS = 4
PREFILL_EVENTS = 2000


class TooManyStreams(CratonError):
    status = 429
    headers = {"Retry-After": "5"}


def sse(event: Mapping[str, Any]) -> str:
    """One event as a Server-Sent Events block; its ``id`` is the event's sequence number."""
    return f"id: {event['seq']}\ndata: {json.dumps(event, separators=(',', ':'))}\n\n"


Block = tuple[int, str, bool]
"""An event ready to send: (sequence number, SSE text, whether it is the flow's last)."""


def block(event: Mapping[str, Any]) -> Block:
    return event["seq"], sse(event), is_last(event)


class Channel:
    """A watched job's latest events (contiguous by sequence number), and who waits for them.

    Each watcher waits on a lock of its own that ``offer`` releases: waking N watchers costs N
    lock releases — a ``Condition`` shared by hundreds of waiters costs N² in ``notify_all``."""

    def __init__(self, job_id: int) -> None:
        self.job_id = job_id
        self.ready = threading.Event()
        """Set once the channel holds the job's latest stored events (see ``load``)."""
        self.lock = threading.Lock()
        self.blocks: list[Block] = []
        """Buffered events, oldest first; ``blocks[i]`` has sequence number first + i."""
        self.last = 0
        """The highest sequence number known to be stored (the buffer ends there)."""
        self.ended_at: int | None = None
        """The sequence number of the flow's last event once the channel has held it; or,
        when the job went quiet without one, of its last event (see QUIET_SECONDS)."""
        self.watchers = 0
        self.wakers: set[threading.Lock] = set()
        self.feeder: threading.Thread | None = None

    def load(self, latest: list[dict[str, Any]]) -> None:
        """Start from the job's latest stored events (oldest first)."""
        with self.lock:
            self.last = latest[0]["seq"] - 1 if latest else 0
        self.ready.set()
        self.offer(latest)

    def offer(self, events: list[dict[str, Any]]) -> None:
        """Take the events that continue the channel; ignore the rest (already here, or after
        a gap the feeder will fill from the record)."""
        if not self.ready.is_set():
            return  # loading: what is committed meanwhile is read from the record
        with self.lock:
            taken = False
            for event in events:
                if event["seq"] != self.last + 1:
                    continue
                if not self.blocks or self.blocks[-1][0] != self.last:
                    self.blocks = []  # the buffer restarts after what it never held
                self.blocks.append(block(event))
                self.last = event["seq"]
                if self.blocks[-1][2]:
                    self.ended_at = self.last
                taken = True
            if len(self.blocks) > 2 * BUFFER_EVENTS:
                del self.blocks[:-BUFFER_EVENTS]
            if taken:
                self.wake()

    def end_quietly(self) -> None:
        with self.lock:
            if self.ended_at is None:
                self.ended_at = self.last
                self.wake()

    def wake(self) -> None:
        """Wake every watcher (call with the lock held)."""
        for waker in self.wakers:
            with contextlib.suppress(RuntimeError):  # already woken
                waker.release()

    def after(self, seq: int) -> tuple[list[Block], bool]:
        """(buffered blocks after ``seq``, whether the buffer starts too late for it). Call
        with the lock held."""
        if seq >= self.last:
            return [], False
        if not self.blocks or self.blocks[0][0] > seq + 1:
            return [], True
        return self.blocks[seq + 1 - self.blocks[0][0]:], False


class Subscription:
    """One watcher's stream (a WSGI body): SSE text from ``after`` to the job's end. Closing it
    — the server does when the client goes away — frees its place."""

    def __init__(self, hub: EventHub, channel: Channel, caller: str, after: int) -> None:
        self.hub = hub
        self.channel = channel
        self.caller = caller
        self.position = after
        self.ended_at: int | None = None
        """The sequence number of the flow's last event, once this watcher has sent it."""
        self.waker = threading.Lock()
        self.waker.acquire()
        self._chunks: Iterator[str] | None = None
        self._closed = False

    def __iter__(self) -> Subscription:
        return self

    def __next__(self) -> bytes:
        if self._chunks is None:
            self._chunks = self._generate()
        try:
            return next(self._chunks).encode()
        except StopIteration:
            self.close()
            raise

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.hub.release(self)

    def _generate(self) -> Iterator[str]:
        yield f"retry: {RETRY_MILLISECONDS}\n\n"
        channel = self.channel
        channel.ready.wait()
        sent_at = written_at = time.monotonic()
        while True:
            pause = sent_at + COALESCE_SECONDS - time.monotonic()
            if pause > 0:
                time.sleep(pause)  # let a burst gather into one write
            self.waker.acquire(blocking=False)  # what woke us is about to be read
            with channel.lock:
                blocks, behind = channel.after(self.position)
                done = not blocks and not behind and self._done()
            if not blocks and not behind and not done:
                self.waker.acquire(timeout=KEEPALIVE_SECONDS)
                with channel.lock:
                    blocks, behind = channel.after(self.position)
                    done = not blocks and not behind and self._done()
            if behind:
                with self.hub.catching_up:
                    blocks = [block(event) for event in
                              self.hub.feed.after(channel.job_id, self.position, 500)]
            if blocks:
                self.position = blocks[-1][0]
                ends = [seq for seq, _, last in blocks if last]
                if ends:
                    self.ended_at = ends[-1]
                sent_at = written_at = time.monotonic()
                yield "".join(text for _, text, _ in blocks)
            elif done:
                yield self._end()
                return
            elif time.monotonic() - written_at >= KEEPALIVE_SECONDS:
                written_at = time.monotonic()
                yield ": keepalive\n\n"

    def _done(self) -> bool:
        """Sent the flow's last event (and whatever came before it was stored), or the job
        went quiet."""
        ends = [at for at in (self.ended_at, self.channel.ended_at) if at is not None]
        return bool(ends) and self.position >= min(ends) and self.position >= self.channel.last

    def _end(self) -> str:
        with self.hub.db.transaction(write=False) as session:
            status = session.scalar(select(Job.status).where(Job.id == self.channel.job_id))
        body = {"status": status, "last": self.position}
        return f"event: end\ndata: {json.dumps(body)}\n\n"


class EventHub:
    """This process's channels: opened for a job's first watcher, closed after its last."""

    def __init__(self, db: Database, redis: RedisLink | None, feed: EventFeed,
                 running_here: Callable[[int], bool], *, max_streams: int,
                 max_per_caller: int) -> None:
        self.db = db
        self.redis = redis
        self.feed = feed
        self.running_here = running_here
        self.max_streams = max_streams
        self.max_per_caller = max_per_caller
        self._lock = threading.Lock()
        self._channels: dict[int, Channel] = {}
        self._callers: collections.Counter[str] = collections.Counter()
        self._open = 0
        self.catching_up = threading.BoundedSemaphore(CATCH_UP_READERS)
        """Watchers reading the record at once: hundreds starting together must not take
        every database connection from the requests."""

    def open(self, job_id: int, after: int, caller: str) -> Subscription:
        """A stream of ``job_id``'s events after ``after`` for ``caller``; 429 when this
        process or this caller has as many streams open as allowed."""
        with self._lock:
            if self._open >= self.max_streams:
                raise TooManyStreams(
                    f"this server has {self._open} event streams open, its limit "
                    "([api] max_streams); retry shortly")
            if self._callers[caller] >= self.max_per_caller:
                raise TooManyStreams(
                    f"{caller} has {self._callers[caller]} event streams open, the limit per "
                    "caller ([api] max_streams_per_caller); close one first")
            channel = self._channels.get(job_id)
            first = channel is None
            if channel is None:
                channel = self._channels[job_id] = Channel(job_id)
            channel.watchers += 1
            self._callers[caller] += 1
            self._open += 1
        if first:
            # Outside the hub's lock: streams of other jobs open meanwhile.
            self._load(channel)
            channel.feeder = threading.Thread(target=self._feed, args=(channel,),
                                              name=f"craton-stream-{job_id}", daemon=True)
            channel.feeder.start()
        subscription = Subscription(self, channel, caller, after)
        with channel.lock:
            channel.wakers.add(subscription.waker)
        return subscription

    def release(self, subscription: Subscription) -> None:
        with self._lock:
            channel = subscription.channel
            channel.watchers -= 1
            self._callers[subscription.caller] -= 1
            if not self._callers[subscription.caller]:
                del self._callers[subscription.caller]
            self._open -= 1
            if channel.watchers == 0 and self._channels.get(channel.job_id) is channel:
                del self._channels[channel.job_id]
        with channel.lock:
            channel.wakers.discard(subscription.waker)

    def publish(self, events: list[tuple[int, dict[str, Any]]]) -> None:
        """Events just committed by this process, as (job id, event) (the sink calls this)."""
        by_job: dict[int, list[dict[str, Any]]] = collections.defaultdict(list)
        with self._lock:
            for job_id, event in events:
                if job_id in self._channels:
                    by_job[job_id].append(event)
            channels = {job_id: self._channels[job_id] for job_id in by_job}
        for job_id, job_events in by_job.items():
            channels[job_id].offer(job_events)

    @property
    def open_streams(self) -> int:
        return self._open

    def _load(self, channel: Channel) -> None:
        """Fill a new channel with the job's latest stored events, so watchers that start
        together (a page everyone opened) need not each read them from the database. Should
        the database not answer, the channel starts empty and its feeder reads the record."""
        try:
            latest = self.feed.latest(channel.job_id, PREFILL_EVENTS)
        except Exception:
            LOG.exception("could not read the events of job %s", channel.job_id)
            latest = []
        channel.load(latest)

    def _feed(self, channel: Channel) -> None:
        """Keep the channel complete while anyone watches: from Redis when the job runs
        elsewhere and Redis answers, else from the database — often for a job elsewhere,
        now and then for one running here (whose events the sink hands over at once)."""
        quiet_checked = 0.0
        while channel.watchers > 0 and channel.ended_at is None:
            try:
                local = self.running_here(channel.job_id)
                if not local and self.redis is not None and self.redis.up:
                    before = channel.last
                    found = self.redis.read(channel.job_id, before, KEEPALIVE_SECONDS)
                    if found:
                        channel.offer(found)
                        if channel.last > before:
                            continue  # else a gap in the stream: the record fills it
                events = self.feed.after(channel.job_id, channel.last, 1000)
                if events:
                    channel.offer(events)
                    continue
                if time.monotonic() - quiet_checked > 5:
                    quiet_checked = time.monotonic()
                    if self._gone_quiet(channel.job_id):
                        channel.end_quietly()
                        return
                time.sleep(LOCAL_POLL_SECONDS if local else REMOTE_POLL_SECONDS)
            except Exception:
                LOG.exception("the event stream of job %s could not be read; retrying",
                              channel.job_id)
                time.sleep(1)

    def _gone_quiet(self, job_id: int) -> bool:
        """A finished job whose run ended long ago (a process that died before its flow's last
        event), or a deleted one: nothing more will come."""
        with self.db.transaction(write=False) as session:
            job = session.get(Job, job_id)
            return job is None or (job.status.finished and job.finished_at is not None and
                                   (utcnow() - job.finished_at).total_seconds() > QUIET_SECONDS)
