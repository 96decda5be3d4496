"""Run a playbook with ansible-runner and read what happened from Ansible's own callbacks.

``run_playbook`` is a thin façade: it starts ansible-runner on a private data directory (a
bundle), turns each runner event into a trimmed Craton event (what a user needs — task, host,
changed, Ansible's message; never a task's full result, which may hold anything the playbook
read), and folds the events into one outcome per host: ok, changed, failed, unreachable or
skipped, with Ansible's message and any ``craton_audit`` facts the playbook set.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ansible_runner.config.runner import RunnerConfig
from ansible_runner.runner import Runner

from craton.db.models import HostRunStatus
from craton.jobs.events import MAX_TEXT, Redactor, clip
from craton.jobs.sandbox import Sandbox

AUDIT_FACT = "craton_audit"
RUN_MARK = "CRATON_RUN"
"""Set in every run's environment; its local descendants inherit it, so what a killed run
left behind (Ansible's workers start their own sessions) can still be found and stopped."""


@dataclasses.dataclass
class HostOutcome:
    status: HostRunStatus = HostRunStatus.PENDING
    current_task: str | None = None
    message: str | None = None
    changed: bool = False
    failed: bool = False
    contacted: bool = False
    """A module ran on the host (not only controller-side actions like debug or fail)."""
    audit: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class RunOutcome:
    status: str
    """ansible-runner's: successful, failed, canceled, timeout, error."""
    rc: int | None
    hosts: dict[str, HostOutcome]
    message: str | None = None


OnEvent = Callable[[str, str | None, dict[str, Any], str], None]
"""(kind, host, data, uuid) for each Ansible event, trimmed."""
OnHost = Callable[[str, HostOutcome], None]
"""Called when a host starts a task or reaches a final state."""


def ansible_env(host_key_checking: bool) -> dict[str, str]:
    return {
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
        "ANSIBLE_RETRY_FILES_ENABLED": "0",
        "ANSIBLE_HOST_KEY_CHECKING": "1" if host_key_checking else "0",
        "ANSIBLE_LOCALHOST_WARNING": "0",
        "ANSIBLE_INVENTORY_UNPARSED_WARNING": "0",
        # ansible-runner starts ansible-playbook: the one beside this interpreter.
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }


def trim(event: dict[str, Any], redactor: Redactor) -> tuple[str, str | None, dict[str, Any]]:
    """What Craton keeps of a runner event: (kind, host, data)."""
    kind = event.get("event", "unknown")
    data_in = event.get("event_data") or {}
    host = data_in.get("host") or data_in.get("remote_addr")
    data: dict[str, Any] = {}
    for key in ("play", "task", "task_action", "duration", "ignore_errors"):
        if data_in.get(key) not in (None, ""):
            data[key] = data_in[key]
    result = data_in.get("res")
    if isinstance(result, dict):
        if "changed" in result:
            data["changed"] = bool(result["changed"])
        if "rc" in result:
            data["rc"] = result["rc"]
        message = message_of(result)
        if message:
            data["msg"] = message
        if "item" in result or "_ansible_item_label" in result:
            data["item"] = clip(result.get("_ansible_item_label", result.get("item")))
    if kind == "playbook_on_stats":
        data["stats"] = {key: data_in.get(key, {}) for key in
                         ("ok", "changed", "failures", "dark", "skipped", "rescued", "ignored")}
    if host is None and event.get("stdout") and kind in ("verbose", "error", "warning",
                                                          "playbook_on_no_hosts_matched",
                                                          "playbook_on_no_hosts_remaining"):
        # ssh-add's "Identity added: <work dir path> (<key comment>)" says nothing a user
        # needs and something they should not see.
        lines = [line for line in event["stdout"].splitlines()
                 if not line.startswith("Identity added:")]
        if any(line.strip() for line in lines):
            data["stdout"] = clip("\n".join(lines))
    return kind, host, redactor.value(data)


def kill_marked(mark: str) -> int:
    """Kill every process whose environment holds ``CRATON_RUN=<mark>`` — or, when ``mark``
    ends with "/", any mark it begins ("job-7/" matches all of job 7's runs). Returns how
    many were signalled."""
    needle = f"\0{RUN_MARK}={mark}".encode() + (b"" if mark.endswith("/") else b"\0")
    killed = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = b"\0" + (entry / "environ").read_bytes() + b"\0"
        except OSError:
            continue
        if needle in environ:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(int(entry.name), signal.SIGKILL)
                killed += 1
    return killed


def _close_control_sockets(directory: Path) -> None:
    """Ask each persisted SSH master of the run to exit, then drop the directory."""
    for socket in directory.glob("*"):
        subprocess.run(["ssh", "-o", f"ControlPath={socket}", "-O", "exit", "craton"],
                       capture_output=True, timeout=10, check=False)
    shutil.rmtree(directory, ignore_errors=True)


def message_of(result: dict[str, Any]) -> str | None:
    """Ansible's own words for a result: msg, else stderr, else reason. A command's generic
    "non-zero return code" comes with the end of what the command said on stderr — where the
    error is."""
    message = next((result[key] for key in ("msg", "stderr", "reason", "exception")
                    if result.get(key)), None)
    stderr = result.get("stderr")
    if message == "non-zero return code" and isinstance(stderr, str) and stderr.strip():
        tail = stderr.strip()[-(MAX_TEXT // 2):]
        message = f"{message} ({result.get('rc')}): {tail}"
    return clip(message)


class HostTracker:
    """Folds events into each host's state."""

    def __init__(self, on_host: OnHost | None) -> None:
        self.hosts: dict[str, HostOutcome] = {}
        self.on_host = on_host

    def outcome(self, host: str) -> HostOutcome:
        return self.hosts.setdefault(host, HostOutcome())

    def see(self, kind: str, host: str | None, event_data: dict[str, Any],
            data: dict[str, Any]) -> None:
        if host is None:
            if kind == "playbook_on_stats":
                self.finish(event_data)
            return
        state = self.outcome(host)
        result = event_data.get("res") if isinstance(event_data.get("res"), dict) else {}
        if kind == "runner_on_start":
            state.status = HostRunStatus.RUNNING
            state.current_task = data.get("task")
            self._tell(host, state)
        elif kind in ("runner_on_ok", "runner_item_on_ok", "runner_on_async_ok"):
            state.changed |= bool(result.get("changed"))
            state.contacted |= "invocation" in result
            facts = result.get("ansible_facts") or {}
            if isinstance(facts.get(AUDIT_FACT), dict):
                state.audit.update(facts[AUDIT_FACT])
        elif kind in ("runner_on_failed", "runner_on_async_failed"):
            state.contacted |= "invocation" in result
            if not event_data.get("ignore_errors"):
                state.failed = True
                state.message = data.get("msg") or "task failed"
                state.current_task = data.get("task")
        elif kind == "runner_on_unreachable":
            state.status = HostRunStatus.UNREACHABLE
            state.message = data.get("msg") or "unreachable"
            state.current_task = data.get("task")
            self._tell(host, state)

    def finish(self, stats: dict[str, Any]) -> None:
        """playbook_on_stats: every host Ansible ran ends in a final state."""
        names = set().union(*(set((stats.get(key) or {}).keys()) for key in
                              ("ok", "changed", "failures", "dark", "skipped", "processed")))
        for host in names:
            state = self.outcome(host)
            if (stats.get("dark") or {}).get(host):
                state.status = HostRunStatus.UNREACHABLE
            elif (stats.get("failures") or {}).get(host) or state.failed:
                state.status = HostRunStatus.FAILED
            elif (stats.get("changed") or {}).get(host) or state.changed:
                state.status = HostRunStatus.CHANGED
            elif (stats.get("ok") or {}).get(host):
                state.status = HostRunStatus.OK
            else:
                state.status = HostRunStatus.SKIPPED
                state.message = state.message or "every task was skipped"
            self._tell(host, state)

    def _tell(self, host: str, state: HostOutcome) -> None:
        if self.on_host is not None:
            self.on_host(host, state)


def run_playbook(private_data_dir: Path, project_dir: Path, playbook: str, *,
                 forks: int, check: bool, diff: bool, extra_vars: dict[str, Any],
                 host_key_checking: bool, on_event: OnEvent, on_host: OnHost | None,
                 cancelled: Callable[[], bool], redactor: Redactor, mark: str,
                 sandbox: Sandbox | None, limit: str | None = None,
                 ident: str = "run") -> RunOutcome:
    """Run ``playbook`` (a path inside ``project_dir``) on the inventory of
    ``private_data_dir``, inside ``sandbox`` (None: unconfined); report every event and every
    host's changes as they happen."""
    tracker = HostTracker(on_host)

    def handle(event: dict[str, Any]) -> bool:
        kind, host, data = trim(event, redactor)
        tracker.see(kind, host, event.get("event_data") or {}, data)
        on_event(kind, host, data, event.get("uuid") or "")
        # False: ansible-runner need not also write the event to its artifacts directory —
        # Craton keeps its own record (and reads hosts' results from the events, not from
        # runner.stats, which this leaves unset). It saves about 15 ms of CPU per event,
        # spent beside Ansible.
        return False

    cmdline = " ".join(flag for flag, wanted in (("--check", check), ("--diff", diff))
                       if wanted)
    envvars = {**ansible_env(host_key_checking), RUN_MARK: mark}
    control_dir = None
    if sandbox is None:
        # SSH connections Ansible keeps open (ControlPersist) must never outlive this run: in
        # a shared directory, a later job — another tenant's, or one after a key was revoked
        # — would ride an open session without its own key being checked. A private, short
        # path (sockets have a ~104-byte limit) per run. (In the sandbox they live in its
        # private /tmp and die with it.)
        control_dir = tempfile.mkdtemp(prefix="craton-cp-")
        envvars["ANSIBLE_SSH_CONTROL_PATH_DIR"] = control_dir
    kill_marked(mark)  # what a run of the same mark left behind (its worker died)
    try:
        config = RunnerConfig(
            private_data_dir=str(private_data_dir), project_dir=str(project_dir),
            playbook=playbook, forks=forks, extravars=extra_vars or None, limit=limit,
            cmdline=cmdline or None, quiet=True, envvars=envvars, ident=ident,
            suppress_output_file=True, suppress_ansible_output=True, suppress_env_files=True)
        config.prepare()
        if sandbox is not None:
            config.command = sandbox.command(
                config.command, writable=(private_data_dir, project_dir), cwd=config.cwd)
            config.env = sandbox.environment(config.env)
        runner = Runner(config, event_handler=handle, cancel_callback=cancelled)
        runner.run()
    finally:
        if control_dir is not None:
            _close_control_sockets(Path(control_dir))
        kill_marked(mark)
    message = None
    if runner.status not in ("successful", "failed"):
        message = f"ansible-runner ended {runner.status}"
    elif runner.rc != 0 and not tracker.hosts:
        message = f"ansible-playbook exited with status {runner.rc} before running any host"
    return RunOutcome(status=runner.status, rc=runner.rc, hosts=tracker.hosts, message=message)
