"""``craton job watch``: a job followed live in the terminal, like its web page.

On a terminal: a progress bar split by host state (each state with its glyph and count, never
colour alone), what the running hosts are doing, the current task; failed and unreachable hosts
are printed above the bar with Ansible's message as they happen. Elsewhere (a pipe, a file, CI
logs) the same news comes as plain lines, without escape codes. Both end with a summary table.
"""

from __future__ import annotations

import dataclasses
import time
from datetime import UTC, datetime
from typing import IO, TYPE_CHECKING, Any

from rich import box
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

if TYPE_CHECKING:
    from collections.abc import Iterable

    from cratonclient.client import Client
    from cratonclient.resources import JobEvent

STATES = {
    # state: (glyph, style, bar character)
    "ok": ("✓", "green", "█"),
    "changed": ("±", "yellow", "█"),
    "failed": ("✕", "bold red", "█"),
    "unreachable": ("⊘", "magenta", "█"),
    "skipped": ("↷", "cyan", "█"),
    "running": ("▶", "blue", "▒"),
    "pending": ("·", "dim", "·"),
}
FINISHED = frozenset({"ok", "changed", "failed", "unreachable", "skipped"})
PROBLEMS = {"runner_on_failed": "failed", "runner_on_unreachable": "unreachable"}
"""Ansible's events that take a host out of the play, and the state each means."""
SUCCEEDED = frozenset({"ok", "changed"})
BAR_WIDTH = 40
SHOWN_RUNNING = 5


@dataclasses.dataclass
class HostView:
    name: str
    status: str = "pending"
    task: str | None = None
    message: str | None = None
    told: str | None = None
    """The state the user was last told this host is in."""


@dataclasses.dataclass
class JobView:
    """What is known of the job, kept current from its events."""

    job_id: int
    playbook: str
    status: str
    hosts: dict[str, HostView]
    task: str | None = None
    message: str | None = None
    started: float = dataclasses.field(default_factory=time.monotonic)
    """When the job started, on this process's monotonic clock."""
    duration: float | None = None

    def count(self) -> dict[str, int]:
        counts = dict.fromkeys(STATES, 0)
        for host in self.hosts.values():
            counts[host.status if host.status in counts else "pending"] += 1
        return counts

    def apply(self, event: JobEvent) -> HostView | None:
        """Take one event in; the host to tell the user about, when it has news.

        A failed task (not ignored) or an unreachable host counts as that host's state at
        once, as Ansible takes the host out of the play then; the host's result, at the end
        of its run, has the last word (a failure a ``rescue`` block handled ends ``ok``)."""
        data = event.data or {}
        host = self.hosts.get(event.host) if event.host else None
        if host is None:
            if event.kind == "playbook_on_task_start":
                self.task = data.get("task")
            elif event.kind == "job" and data.get("status"):
                if data["status"] == "running" and self.status == "pending":
                    self.started = time.monotonic()
                self.status = data["status"]
                self.message = data.get("message") or self.message
            return None
        if event.kind == "runner_on_start" and host.status not in FINISHED:
            host.status, host.task = "running", data.get("task") or host.task
        elif event.kind in PROBLEMS and not data.get("ignore_errors") \
                and host.status not in FINISHED:
            host.status = PROBLEMS[event.kind]
            host.task = data.get("task") or host.task
            host.message = data.get("msg") or host.message
            return self._news(host)
        elif event.kind == "host_result":
            host.status = data.get("status") or host.status
            host.message = data.get("msg") if data.get("msg") is not None else host.message
            return self._news(host)
        elif event.kind == "host_skipped":
            host.status, host.message = "skipped", data.get("msg")
            return self._news(host)
        return None

    @staticmethod
    def _news(host: HostView) -> HostView | None:
        """``host``, unless the user was already told it reached this state."""
        if host.told == host.status:
            return None
        host.told = host.status
        return host

    def elapsed(self) -> float:
        """Seconds the job has run: its duration once it has ended."""
        if self.duration is not None:
            return self.duration
        return max(0.0, time.monotonic() - self.started)

    def succeeded(self) -> bool:
        return self.status == "succeeded" and all(
            host.status in SUCCEEDED for host in self.hosts.values())


def bar(view: JobView) -> Text:
    """The progress bar: one segment per state, sized by its share of the hosts (rounded
    where the segments meet, so they always fill the bar and a state without hosts gets
    none of it)."""
    if not view.hosts:
        return Text(STATES["pending"][2] * BAR_WIDTH, style=STATES["pending"][1])
    counts = view.count()
    total = len(view.hosts)
    text = Text()
    before = drawn = 0
    for state, (_, style, character) in STATES.items():
        before += counts[state]
        width = round(BAR_WIDTH * before / total) - drawn
        text.append(character * width, style=style)
        drawn += width
    return text


def legend(view: JobView) -> Text:
    counts = view.count()
    text = Text()
    for state, (glyph, style, _) in STATES.items():
        if counts[state] or state in ("ok", "failed"):
            text.append(f"{glyph} {state} {counts[state]}  ", style=style)
    return text


def headline(view: JobView) -> str:
    done = sum(1 for host in view.hosts.values() if host.status in FINISHED)
    elapsed = int(view.elapsed())
    return (f"job {view.job_id} {view.status} · {view.playbook} · {done}/{len(view.hosts)} "
            f"hosts done · {elapsed // 60}:{elapsed % 60:02d}")


def live_panel(view: JobView) -> Group:
    lines: list[Any] = [Text(headline(view), style="bold"), bar(view), legend(view)]
    if view.task:
        lines.append(Text(f"task: {view.task}", style="dim"))
    running = [host for host in view.hosts.values() if host.status == "running"]
    for host in running[:SHOWN_RUNNING]:
        lines.append(Text(f"  ▶ {host.name}: {host.task or '…'}", style="blue"))
    if len(running) > SHOWN_RUNNING:
        lines.append(Text(f"  … and {len(running) - SHOWN_RUNNING} more running", style="dim"))
    return Group(*lines)


def summary(view: JobView, terminal: bool) -> Table:
    """Every host, problems first, with its state and Ansible's message."""
    rank = {"failed": 0, "unreachable": 1, "skipped": 2, "running": 3, "pending": 4,
            "changed": 5, "ok": 6}
    table = Table(box=box.SIMPLE if terminal else box.ASCII, title=headline(view))
    for column in ("host", "state", "message"):
        table.add_column(column)
    for host in sorted(view.hosts.values(), key=lambda h: (rank.get(h.status, 9), h.name)):
        glyph, style, _ = STATES.get(host.status, ("?", "", ""))
        table.add_row(host.name, Text(f"{glyph} {host.status}", style=style),
                      host.message or "")
    return table


def news(host: HostView) -> Text:
    """One line about a host that reached a state: for a problem, where and Ansible's words
    (their line breaks made spaces, so a log keeps one line per host)."""
    glyph, style, _ = STATES.get(host.status, ("?", "", ""))
    line = Text(f"{glyph} {host.name} {host.status}", style=style)
    if host.status in ("failed", "unreachable") and host.task:
        line.append(f" at {host.task}", style=style)
    if host.message and host.status not in SUCCEEDED:
        line.append(": " + " ".join(host.message.split()))
    return line


def watch(client: Client, job_id: int, stdout: IO[str]) -> int:
    """Follow job ``job_id`` to its end, drawing it on ``stdout``; 0 when every host
    succeeded, 1 otherwise."""
    job = client.jobs.get(job_id)
    last = job.last_event
    hosts = {row.name: HostView(row.name, row.status, row.current_task, row.message,
                                told=row.status)
             for row in client.jobs.hosts(job_id)}
    view = JobView(job_id, job.playbook, job.status, hosts, message=job.message,
                   started=time.monotonic() - _running_for(job.started_at))
    console = Console(file=stdout, highlight=False, soft_wrap=False)
    terminal = console.is_terminal
    try:
        _follow(client.jobs.stream(job_id, last_event_id=last), view, console)
    except KeyboardInterrupt:
        console.print(f"stopped watching: job {job_id} goes on (craton job watch {job_id} "
                      f"follows it again, craton job cancel {job_id} stops it)")
        return 130
    final = client.jobs.get(job_id)
    view.status, view.message, view.duration = final.status, final.message, final.duration
    for row in client.jobs.hosts(job_id):
        shown = view.hosts.setdefault(row.name, HostView(row.name))
        shown.status, shown.message = row.status, row.message or shown.message
    console.print(summary(view, terminal))
    if view.message:
        console.print(view.message)
    return 0 if view.succeeded() else 1


def _follow(events: Iterable[JobEvent], view: JobView, console: Console) -> None:
    """Draw ``events`` as they come: a live panel with the problems printed above it on a
    terminal, one plain line per host's news otherwise."""
    if console.is_terminal:
        # The panel is drawn afresh at each refresh, so its clock moves on between events.
        with Live(console=console, refresh_per_second=4, transient=True,
                  get_renderable=lambda: live_panel(view)) as live:
            for event in events:
                told = view.apply(event)
                if told is not None and told.status not in SUCCEEDED:
                    live.console.print(news(told))
    else:
        console.print(headline(view))
        for event in events:
            told = view.apply(event)
            if told is not None:
                console.print(news(told), soft_wrap=True)  # a log line is never cut


def _running_for(started_at: str | None) -> float:
    """Seconds since ``started_at`` (the server's ISO 8601 time), by this machine's clock."""
    if not started_at:
        return 0.0
    started = datetime.fromisoformat(started_at)
    if started.tzinfo is None:
        started = started.replace(tzinfo=UTC)
    return max(0.0, (datetime.now(UTC) - started).total_seconds())
