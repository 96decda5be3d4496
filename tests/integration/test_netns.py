"""tests/netns.py end to end: real sshd processes in network namespaces that Ansible reaches over
SSH (``ansible`` and ``ansible_runner`` both), a dead host Ansible reports UNREACHABLE, and
nothing of ours — namespace, veth, sshd or process inside a namespace — left once the context
manager exits, however the body ends.

These need root; CI runs them as root, so they fail rather than skip elsewhere.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ansible_runner
import pytest
import yaml

from tests.netns import LINK_PATTERN, NETNS_PREFIX, SshFleet, can_create_namespaces, ssh_hosts

BIN = Path(sys.executable).parent
ADHOC_RESULT = re.compile(r"^(\S+) \| (\S+) => (\{$.*?^\})$", re.MULTILINE | re.DOTALL)
"""One host's result as ``ansible`` prints it: ``name | STATUS => {json over lines}``."""


def test_namespaces_can_be_created() -> None:
    assert os.geteuid() == 0, "the netns tests need root (CI runs them as root)"
    assert can_create_namespaces()


def test_ansible_pings_live_hosts_and_reports_the_dead_one(tmp_path: Path) -> None:
    before = _network_state()
    with ssh_hosts(tmp_path, count=2, unreachable=1) as fleet:
        assert [host.name for host in fleet.hosts] == ["reachable-0", "reachable-1"]
        assert len(fleet.unreachable) == 1
        assert all(host.pid for host in fleet.hosts)
        assert fleet.private_key.startswith("-----BEGIN OPENSSH PRIVATE KEY-----")
        assert fleet.key_path.read_text() == fleet.private_key
        assert fleet.key_path.stat().st_mode & 0o777 == 0o600
        traces = _Traces.of(fleet)
        inventory = _write_inventory(tmp_path / "inventory.yml", fleet)
        settings = _ansible_settings(tmp_path)
        (dead,) = fleet.unreachable

        result = subprocess.run(
            [str(BIN / "ansible"), "-i", str(inventory), "all", "-m", "ansible.builtin.ping"],
            capture_output=True, text=True, env={**os.environ, **settings}, timeout=60,
        )
        replies = {name: (status, json.loads(body))
                   for name, status, body in ADHOC_RESULT.findall(result.stdout)}
        assert set(replies) == {host.name for host in fleet.all_hosts}, result.stdout
        for host in fleet.hosts:
            assert replies[host.name] == ("SUCCESS", {"changed": False, "ping": "pong"})
        status, reply = replies[dead.name]
        assert status == "UNREACHABLE!"
        assert reply["unreachable"] is True
        assert f"connect to host {dead.ip} port 22: Connection refused" in reply["msg"]
        assert result.returncode == 4, result.stderr  # ansible's "some hosts unreachable"

        (tmp_path / "runner").mkdir()
        runner = ansible_runner.run(
            private_data_dir=str(tmp_path / "runner"), inventory=str(inventory),
            host_pattern="all", module="ansible.builtin.ping", quiet=True,
            # Pipelining here (not above) covers Ansible's other way to ship the module; the
            # run above copies it over SFTP.
            envvars={**settings, "ANSIBLE_PIPELINING": "True"},
        )
        assert runner.stats is not None, runner.stdout.read()
        assert runner.stats["dark"] == {dead.name: 1}
        assert runner.stats["ok"] == {host.name: 1 for host in fleet.hosts}
        pongs = {event["event_data"]["host"]: event["event_data"]["res"].get("ping")
                 for event in runner.events if event["event"] == "runner_on_ok"}
        assert pongs == {host.name: "pong" for host in fleet.hosts}

    traces.assert_gone(before, _network_state(), tmp_path)


def test_cleanup_runs_when_the_body_raises(tmp_path: Path) -> None:
    before = _network_state()
    with pytest.raises(RuntimeError, match="the body failed"), \
            ssh_hosts(tmp_path, count=1, unreachable=1) as fleet:
        traces = _Traces.of(fleet)
        assert _network_state() != before
        raise RuntimeError("the body failed")
    traces.assert_gone(before, _network_state(), tmp_path)


class _Traces:
    """What a fleet left in the system while it ran, to prove afterwards that all of it is gone:
    namespace names and their kernel identities (inodes), veth names and sshd PIDs."""

    def __init__(self, fleet: SshFleet, inodes: dict[str, int]) -> None:
        self.fleet = fleet
        self.inodes = inodes

    @classmethod
    def of(cls, fleet: SshFleet) -> _Traces:
        namespaces, links = _network_state()
        ours = fleet.all_hosts
        assert {host.namespace for host in ours} <= namespaces
        assert {host.veth for host in ours} <= links
        inodes = _inodes(fleet)
        # Each sshd really runs inside its host's namespace (not in ours).
        assert set(_process_in(set(inodes.values()))) >= {host.pid for host in fleet.hosts}
        return cls(fleet, inodes)

    def assert_gone(self, before: tuple[set[str], set[str]], after: tuple[set[str], set[str]],
                    workdir: Path) -> None:
        namespaces, links = after
        ours = self.fleet.all_hosts
        assert not {host.namespace for host in ours} & namespaces
        assert not {link for link in links if self.fleet.token in link}
        # Nothing that was not ours appeared or vanished (other runs' devices aside).
        assert _others(after) == _others(before)
        for host in self.fleet.hosts:
            assert not _alive(host.pid), f"sshd {host.pid} of {host.name} still runs"
        assert not _process_in(set(self.inodes.values())), "a process is left in our namespace"
        # Ansible's ControlPersist clients (ssh ... [mux], control sockets under workdir) are
        # not ours to kill: they end by themselves once our sshd side closes the connection.
        _eventually(lambda: not _processes_mentioning(workdir), "processes using the workdir")


def _network_state() -> tuple[set[str], set[str]]:
    """Names from ``ip netns list`` and ``ip link`` in the root namespace."""
    namespaces = {line.split()[0] for line in subprocess.run(
        ["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout.splitlines()
        if line.strip()}
    links = {link["ifname"] for link in json.loads(subprocess.run(
        ["ip", "-j", "link", "show"], capture_output=True, text=True, check=True).stdout)}
    return namespaces, links


def _others(state: tuple[set[str], set[str]]) -> tuple[set[str], set[str]]:
    namespaces, links = state
    return ({name for name in namespaces if not name.startswith(NETNS_PREFIX)},
            {name for name in links if not LINK_PATTERN.match(name)})


def _inodes(fleet: SshFleet) -> dict[str, int]:
    return {host.namespace: os.stat(f"/run/netns/{host.namespace}").st_ino
            for host in fleet.hosts}


def _process_in(inodes: set[int]) -> list[int]:
    """PIDs of live processes whose network namespace is one of ``inodes``."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                inode = os.stat(entry / "ns" / "net").st_ino
            except OSError:
                continue
            if inode in inodes and _alive(int(entry.name)):
                found.append(int(entry.name))
    return found


def _processes_mentioning(path: Path) -> list[str]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if str(path) in command:
                found.append(f"{entry.name}: {command}")
    return found


def _alive(pid: int | None) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _eventually(check: Callable[[], bool], what: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"still there after {timeout}s: {what}"
        time.sleep(0.05)


def _write_inventory(path: Path, fleet: SshFleet) -> Path:
    hosts: dict[str, dict[str, Any]] = {
        host.name: {
            "ansible_host": host.ip,
            "ansible_port": host.port,
            "ansible_user": host.user,
            "ansible_ssh_private_key_file": str(host.key_path),
            "ansible_python_interpreter": "/usr/bin/python3",
            "ansible_ssh_common_args":
                "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null",
            "ansible_ssh_timeout": 3,
        }
        for host in fleet.all_hosts
    }
    path.write_text(yaml.safe_dump({"all": {"hosts": hosts}}))
    return path


def _ansible_settings(workdir: Path) -> dict[str, str]:
    """Keep Ansible off the developer's configuration and out of ~/.ansible: an empty config,
    control sockets and temporary files under workdir (the "remote" side shares the disk)."""
    config = workdir / "ansible.cfg"
    config.write_text("")
    return {
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "ANSIBLE_CONFIG": str(config),
        "ANSIBLE_SSH_CONTROL_PATH_DIR": str(workdir / "cp"),
        "ANSIBLE_LOCAL_TEMP": str(workdir / "ansible-local"),
        "ANSIBLE_REMOTE_TMP": str(workdir / "ansible-remote"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_PIPELINING": "False",
    }
