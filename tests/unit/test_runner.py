"""The ansible-runner adapter's small rules: what is kept of an event, what is redacted, and
how leftovers of a killed run are found."""

from __future__ import annotations

import os
import subprocess
import time

from craton.jobs.events import Redactor
from craton.jobs.runner import RUN_MARK, kill_marked, trim


def test_a_killed_runs_leftovers_are_found_by_their_mark() -> None:
    """Exactly the processes carrying the mark are stopped; a mark ending in / is a prefix."""
    def start(mark: str) -> subprocess.Popen[bytes]:
        return subprocess.Popen(["sleep", "30"], env={**os.environ, RUN_MARK: mark})

    exact, longer, other = start("job-1/host-a"), start("job-1/host-ab"), start("job-2/host-a")
    try:
        time.sleep(0.1)
        assert kill_marked("job-1/host-a") == 1
        assert exact.wait(5) == -9
        assert longer.poll() is None and other.poll() is None
        assert kill_marked("job-1/") == 1
        assert longer.wait(5) == -9
        assert other.poll() is None
    finally:
        for process in (exact, longer, other):
            process.kill()
            process.wait(5)


def test_secrets_are_redacted_whole_and_by_line() -> None:
    key = "-----BEGIN KEY-----\nAAAABBBBCCCCDDDD\nshort\n-----END KEY-----"
    redactor = Redactor(["hunter2", key, "abc"])
    assert redactor.text("password hunter2!") == "password [REDACTED]!"
    assert redactor.text("line AAAABBBBCCCCDDDD leaked") == "line [REDACTED] leaked"
    assert redactor.value({"a": ["x hunter2"]}) == {"a": ["x [REDACTED]"]}
    assert redactor.text("abc and short stay") == "abc and short stay"


def test_an_event_keeps_what_a_user_needs_and_never_the_whole_result() -> None:
    event = {"event": "runner_on_failed", "uuid": "u", "event_data": {
        "host": "h1", "task": "install", "task_action": "ansible.builtin.package",
        "res": {"msg": "no package hunter2", "changed": False, "rc": 1,
                "stdout": "registered output with hunter2", "invocation": {"x": "hunter2"}}}}
    kind, host, data = trim(event, Redactor(["hunter2"]))
    assert (kind, host) == ("runner_on_failed", "h1")
    assert data == {"task": "install", "task_action": "ansible.builtin.package",
                    "changed": False, "rc": 1, "msg": "no package [REDACTED]"}


def test_ssh_add_chatter_is_not_kept() -> None:
    event = {"event": "verbose", "stdout": "Identity added: /srv/jobs/7/ssh_key (ops@box)"}
    assert "stdout" not in trim(event, Redactor())[2]
    event = {"event": "verbose", "stdout": "ERROR! the playbook: x.yml could not be found"}
    assert trim(event, Redactor())[2]["stdout"].startswith("ERROR!")
