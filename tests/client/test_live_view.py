"""``craton job run --watch`` and ``craton job watch`` as a person sees them: the command
runs under a real pseudo-terminal (160 columns by 40 rows, set with TIOCSWINSZ), its output is
read while the job runs and rendered by pyte, a terminal emulator, so the assertions are about
the screen.

The job's hosts wait for the test's go-ahead (a task that waits for a TCP port the test starts
listening on), so "mid-run" is a state the test holds, not a moment it hopes to catch: the
test reads the screen while hosts are still running, checks the job is still running, then
lets it end and reads the summary."""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import signal
import struct
import subprocess
import sys
import termios
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pyte
import pytest

from cratonclient import Client
from tests.client.conftest import CRATON, EVENT_TIMEOUT, Api, GoAhead

COLUMNS, ROWS = 160, 40
LOCAL = {"ansible_connection": "local",
         "ansible_python_interpreter": "{{ ansible_playbook_python }}"}
UNREACHABLE = {"ansible_connection": "ssh", "ansible_host": "127.0.0.1", "ansible_port": 1}
SITE = """\
- name: Converge
  hosts: all
  gather_facts: false
  tasks:
    - name: Ping
      ansible.builtin.ping:
    - name: Check disks
      ansible.builtin.fail:
        msg: "sdb failing on {{ inventory_hostname }}: replace the disk"
      when: broken_disk | default(false)
    - name: Wait for the go-ahead
      ansible.builtin.wait_for:
        host: 127.0.0.1
        port: "{{ go_ahead_port }}"
        timeout: 600
    - name: Install packages
      ansible.builtin.command: "true"
"""
@dataclass
class Lab:
    client: Client
    region_id: int
    source: Path
    go_ahead: GoAhead
    host_ids: dict[str, int]


@pytest.fixture
def lab(api: Api, client: Client) -> Iterator[Lab]:
    """A region of four hosts — h1 and h2 fine, h3 unreachable, h4 with a failing disk — and
    the playbook above in a directory the server may read; the hosts that get past the disk
    check wait for the go-ahead."""
    go_ahead = GoAhead()
    tenant = client.tenants.create(f"live-{uuid.uuid4().hex[:8]}")
    region = tenant.create_region("lab", variables={**LOCAL, "go_ahead_port": go_ahead.port})
    hosts = region.create_hosts([{"name": "h1"}, {"name": "h2"},
                         {"name": "h3", "variables": UNREACHABLE},
                         {"name": "h4", "variables": {"broken_disk": True}}])
    source = api.home / "data" / "sources" / str(tenant.id) / "live"
    source.mkdir(parents=True)
    (source / "site.yml").write_text(SITE)
    try:
        yield Lab(client, region.id, source, go_ahead, {host.name: host.id for host in hosts})
    finally:
        go_ahead.give()  # nothing is left waiting, whatever the test did
        for job in client.jobs.list(region=region.id, status=["pending", "running"]):
            job.wait(timeout=EVENT_TIMEOUT)
        go_ahead.close()


AS_AT_A_TERMINAL = (
    "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
    "os.execv(sys.argv[1], sys.argv[1:])")
"""Run a command with Ctrl-C's signal as a terminal gives it: a test run in the background
(CI's) inherits SIGINT ignored, and exec keeps it so — Python would then never raise
KeyboardInterrupt."""


class Terminal:
    """The ``craton`` command on the slave side of a pseudo-terminal; everything it writes is
    kept (``raw``) and fed to a pyte screen as it arrives."""

    def __init__(self, api: Api, *args: str) -> None:
        master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLUMNS, 0, 0))
        environ = {k: v for k, v in os.environ.items()
                   if not k.startswith(("CRATON_", "OS_")) and k not in (
                       "COLUMNS", "LINES", "NO_COLOR", "FORCE_COLOR", "TTY_COMPATIBLE",
                       "TTY_INTERACTIVE")}
        environ.update(CRATON_URL=api.url, HOME=str(api.home), TERM="xterm-256color",
                       LANG="C.UTF-8")
        self.process = subprocess.Popen([sys.executable, "-c", AS_AT_A_TERMINAL, str(CRATON),
                                         *args], stdin=slave, stdout=slave, stderr=slave,
                                        env=environ, start_new_session=True)
        os.close(slave)
        self.master = master
        self.screen = pyte.Screen(COLUMNS, ROWS)
        self.stream = pyte.ByteStream(self.screen)
        self.raw = bytearray()
        self.closed = False
        self.changed = threading.Condition()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        while True:
            try:
                chunk = os.read(self.master, 65536)
            except OSError:  # EIO: the command and everything it started closed the terminal
                chunk = b""
            with self.changed:
                if not chunk:
                    self.closed = True
                    self.changed.notify_all()
                    return
                self.raw += chunk
                self.stream.feed(chunk)
                self.changed.notify_all()

    def text(self) -> str:
        """The screen as a person sees it now, one line per row."""
        with self.changed:
            return "\n".join(line.rstrip() for line in self.screen.display)

    def wait_for(self, what: str, check: Callable[[str], bool]) -> str:
        """Wait until the screen shows ``what`` (``check`` of its text is true); the text."""
        deadline = time.monotonic() + EVENT_TIMEOUT
        with self.changed:
            while True:
                text = "\n".join(line.rstrip() for line in self.screen.display)
                if check(text):
                    return text
                if self.closed or time.monotonic() >= deadline:
                    raise AssertionError(f"the screen never showed {what}:\n{text}")
                self.changed.wait(deadline - time.monotonic())

    def finish(self) -> int:
        """Wait for the command to exit and for its last output; its exit status."""
        status = self.process.wait(EVENT_TIMEOUT)
        with self.changed:
            self.changed.wait_for(lambda: self.closed, EVENT_TIMEOUT)
        os.close(self.master)
        return status

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


@contextlib.contextmanager
def terminal(api: Api, *args: str) -> Iterator[Terminal]:
    running = Terminal(api, *args)
    try:
        yield running
    finally:
        running.stop()


def line_with(text: str, start: str) -> str:
    """The first screen line that begins with ``start`` (after indentation)."""
    found = [line for line in text.splitlines() if line.strip().startswith(start)]
    assert found, f"no line starting with {start!r}:\n{text}"
    return found[0].strip()


def legend_counts(text: str) -> dict[str, int]:
    """The counts the legend under the progress bar shows, by state."""
    return {state: int(count) for state, count in re.findall(
        r"[✓±✕⊘↷▶·] (ok|changed|failed|unreachable|skipped|running|pending) (\d+)",
        line_with(text, "✓ ok"))}


def clock_of(text: str) -> int:
    """The seconds the headline's clock shows."""
    found = re.search(r"hosts done · (\d+):(\d\d)", text)
    assert found, f"no clock on the screen:\n{text}"
    return int(found[1]) * 60 + int(found[2])


def bar_line(text: str) -> str:
    """The progress bar: the row made only of the bar's characters."""
    rows = [line.strip() for line in text.splitlines()
            if line.strip() and set(line.strip()) <= set("█▒·")]
    assert rows, f"no progress bar on the screen:\n{text}"
    return rows[0]


def test_job_run_watch_on_a_terminal(api: Api, lab: Lab) -> None:
    with terminal(api, "job", "run", str(lab.region_id), "site.yml", "--source",
                  str(lab.source), "--watch") as term:
        # Mid-run: h1 and h2 wait for the go-ahead, h3 could not be reached, h4 failed.
        def mid_run(text: str) -> bool:
            return "⊘ h3 unreachable" in text and "✕ h4 failed" in text and \
                "▶ h1: Wait for the go-ahead" in text and "▶ h2: Wait for the go-ahead" in text
        text = term.wait_for("h1 and h2 waiting, h3 and h4 reported", mid_run)
        job_id = int(re.search(r"job (\d+) running", text)[1])  # type: ignore[index]
        assert lab.client.jobs.get(job_id).status == "running", "the job has not ended yet"

        unreachable = line_with(text, "⊘ h3 unreachable")
        assert "Ping" in unreachable and "Connection refused" in unreachable, \
            "Ansible's message comes with the failure, as it happens"
        failed = line_with(text, "✕ h4 failed")
        assert "Check disks" in failed and "sdb failing on h4: replace the disk" in failed
        assert legend_counts(text) == {"ok": 0, "failed": 1, "unreachable": 1, "running": 2}
        assert "site.yml · 2/4 hosts done" in line_with(text, f"job {job_id} running")
        bar = bar_line(text)
        assert len(bar) == 40 and bar.count("▒") == 20 and bar.count("█") == 20, \
            "half the bar running, a quarter each failed and unreachable"
        assert "task: Wait for the go-ahead" in text
        assert b"\x1b[" in term.raw, "a terminal gets a live view, drawn with escape codes"
        assert term.raw.count(f"job {job_id} running".encode()) > 1, "drawn more than once"

        # While nothing happens the view is still redrawn: its clock moves on.
        clock = clock_of(text)
        term.wait_for("the clock moving on", lambda now: clock_of(now) > clock)

        lab.go_ahead.give()
        status = term.finish()
    final = term.text()
    assert status == 1, ("h3 and h4 did not succeed", final)
    assert lab.client.jobs.get(job_id).status == "failed"
    rows = [line.split() for line in final.splitlines()
            if re.match(r"\s*h\d\s", line)]
    assert [row[:3] for row in rows] == [["h4", "✕", "failed"], ["h3", "⊘", "unreachable"],
                                         ["h1", "±", "changed"], ["h2", "±", "changed"]], \
        ("the summary: every host, problems first", final)
    summary = final[final.index("h4"):]
    assert "sdb failing on h4" in summary and "Connection refused" in summary
    assert f"job {job_id} failed" in final and "4/4 hosts done" in final
    assert "▶" not in final, "the live part is gone once the job has ended"
    assert final.index("⊘ h3 unreachable at Ping") < final.index(f"job {job_id} failed"), \
        "the failures printed as they happened stay above the summary"


def test_job_watch_attaches_to_a_running_job(api: Api, lab: Lab) -> None:
    """Watching starts from the job's state when the command starts, not from its events."""
    job = lab.client.jobs.submit(lab.region_id, "site.yml", source={"path": str(lab.source)},
                                 filters={"id": [lab.host_ids["h1"], lab.host_ids["h2"]]})
    waiting: set[str] = set()
    for event in job.stream():
        if event.kind == "runner_on_start" and event.data.get("task") == "Wait for the go-ahead":
            waiting.add(event.host or "")
        if waiting == {"h1", "h2"}:
            break
    with terminal(api, "job", "watch", str(job.id)) as term:
        text = term.wait_for("both hosts waiting", lambda text: "▶ h1: Wait for the go-ahead"
                             in text and "▶ h2: Wait for the go-ahead" in text)
        assert legend_counts(text) == {"ok": 0, "failed": 0, "running": 2}
        assert f"job {job.id} running · site.yml · 0/2 hosts done" in text
        assert bar_line(text) == "▒" * 40
        lab.go_ahead.give()
        status = term.finish()
    final = term.text()
    assert status == 0, ("every host succeeded", final)
    assert f"job {job.id} succeeded" in final and "2/2 hosts done" in final
    rows = [line.split()[:3] for line in final.splitlines() if re.match(r"\s*h\d\s", line)]
    assert rows == [["h1", "±", "changed"], ["h2", "±", "changed"]], final
    assert "▶" not in final and "✕" not in final and "⊘" not in final


def test_ctrl_c_stops_watching_and_leaves_the_job_running(api: Api, lab: Lab) -> None:
    job = lab.client.jobs.submit(lab.region_id, "site.yml", source={"path": str(lab.source)},
                                 filters={"id": [lab.host_ids["h1"]]})
    with terminal(api, "job", "watch", str(job.id)) as term:
        term.wait_for("h1 waiting", lambda text: "▶ h1: Wait for the go-ahead" in text)
        term.process.send_signal(signal.SIGINT)  # what Ctrl-C sends
        status = term.finish()
    final = term.text()
    assert status == 130, final
    assert f"stopped watching: job {job.id} goes on" in final
    assert f"craton job cancel {job.id}" in final and "Traceback" not in final
    assert lab.client.jobs.get(job.id).status == "running", "watching stopped, the job did not"
