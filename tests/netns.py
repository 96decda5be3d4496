"""Real SSH hosts for the tests: one Linux network namespace per host, a veth pair into it from
the root namespace and a real OpenSSH server listening on the namespace's own address.

Why namespaces: Ansible only proves anything when it really connects over SSH — host key
exchange, public key login, ``python3`` on the far side, and a genuine UNREACHABLE for a host
that does not answer. Namespaces give each "host" its own address and port space without
containers or virtual machines, while the file system stays shared, so ``/usr/bin/python3``
exists "on" every host and ``ansible_user=root`` just works.

Everything is created with a random token in its name, so parallel runs never clash, and on exit
exactly what was created is removed again: each sshd is stopped by the PID we started (SIGTERM,
then SIGKILL), any process left inside our namespaces (SSH sessions the sshd forked, e.g. an
Ansible ControlPersist connection) is stopped, and our veth devices and namespaces are deleted —
nothing else is touched. Needs root (``can_create_namespaces`` tells callers whether it will work).

Two lasting traces are outside our control and harmless: ``ip netns add`` creates ``/run/netns``
(and bind-mounts it onto itself) the first time it runs on a machine, and sshd refuses to start
without its privilege separation directory ``/run/sshd``, which we create (root, 0755) when it is
missing — exactly what the Debian package does at boot — and leave, because a concurrent run or
a system sshd may be using it.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import ipaddress
import json
import os
import random
import re
import secrets
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tests import services

SSHD = Path("/usr/sbin/sshd")
PRIVSEP_DIR = Path("/run/sshd")
"""Compiled into Debian's sshd; it refuses to start (and chroots pre-auth children) without it."""

POOL = ipaddress.IPv4Network("10.250.0.0/16")
"""Private range our /24s come from; each host gets one /30 of the chosen /24."""

NETNS_PREFIX = "craton-"
"""Our namespaces are named ``craton-<token>-<index>``."""

LINK_PATTERN = re.compile(r"^cr[0-9a-f]{8}[rn]\d+$")
"""Our veth ends are ``cr<token>r<index>`` (root side) and ``cr<token>n<index>`` (namespace
side): interface names are limited to 15 characters, so the prefix is short."""

_LOCK_NAME = "\0craton-tests-netns-addresses"
"""Abstract Unix socket used as a machine-wide lock while a subnet is chosen and claimed. It is
released by the kernel when the holder dies, and leaves no file behind."""

_BLOCK_PREFIX = 30
_MAX_HOSTS = 2 ** (_BLOCK_PREFIX - 24)


@dataclass(frozen=True)
class SshHost:
    """One host of the fleet: where Ansible connects and what we created for it."""

    name: str
    ip: str
    port: int
    user: str
    key_path: Path
    pid: int | None
    """The sshd we started (``None`` for an unreachable host, where nothing listens)."""
    namespace: str
    veth: str
    """Root-namespace end of the veth pair; the other end lives inside ``namespace``."""


@dataclass(frozen=True)
class SshFleet:
    """What ``ssh_hosts`` yields."""

    hosts: list[SshHost]
    """Hosts with a running sshd that accepts ``private_key``."""
    unreachable: list[SshHost]
    """Hosts whose address is routed but refuses connections: nothing listens there, so ssh
    fails at once with "Connection refused" and Ansible reports UNREACHABLE deterministically,
    with no timeout to wait for."""
    private_key: str
    """Client private key (OpenSSH format, no passphrase) every sshd accepts."""
    key_path: Path
    """The same key as a 0600 file, for ``ansible_ssh_private_key_file``."""
    token: str
    """Random part of every name we created, so callers can tell our devices from others."""
    subnet: ipaddress.IPv4Network

    @property
    def all_hosts(self) -> list[SshHost]:
        """Reachable then unreachable hosts, for writing one inventory with both."""
        return [*self.hosts, *self.unreachable]


@functools.cache
def can_create_namespaces() -> bool:
    """Whether ``ssh_hosts`` can work here: we are root and ``ip netns add`` really succeeds.

    Listing namespaces also works in unprivileged containers that cannot create one, so this
    creates (and deletes) a throw-away namespace rather than trusting ``ip netns list``.
    """
    if os.geteuid() != 0 or shutil.which("ip") is None:
        return False
    probe = f"{NETNS_PREFIX}probe-{secrets.token_hex(4)}"
    if subprocess.run(["ip", "netns", "add", probe], capture_output=True).returncode != 0:
        return False
    subprocess.run(["ip", "netns", "delete", probe], capture_output=True)
    return True


@contextlib.contextmanager
def ssh_hosts(workdir: Path, count: int = 3, unreachable: int = 1, *, user: str = "root",
              port: int = 22, timeout: float = 10.0) -> Iterator[SshFleet]:
    """Start ``count`` reachable SSH hosts and ``unreachable`` dead ones; remove them on exit.

    ``count`` is the number of hosts with an sshd (``fleet.hosts``); the dead ones come on top
    (``fleet.unreachable``), so the defaults make four namespaces.

    Files (keys, sshd configs, logs, PID files) go to a fresh directory under ``workdir``, so
    the same workdir may be used again. Cleanup runs however the body ends, and removes only
    what this call created.
    """
    if count < 0 or unreachable < 0 or count + unreachable > _MAX_HOSTS:
        raise ValueError(f"between 0 and {_MAX_HOSTS} hosts in all, not {count}+{unreachable}")
    if not SSHD.is_file():
        raise RuntimeError(f"{SSHD} is missing: install openssh-server")
    token = secrets.token_hex(4)
    root = workdir / f"ssh-hosts-{token}"
    root.mkdir(parents=True)
    key_path, private_key, public_key = _client_key(root)
    authorized_keys = root / "authorized_keys"
    authorized_keys.write_text(public_key + "\n")
    _ensure_privsep_dir()

    with contextlib.ExitStack() as cleanup:
        slots: list[_Slot] = []
        with _address_lock(timeout):
            subnet = _pick_subnet()
            for index, block in zip(range(count + unreachable),
                                    subnet.subnets(new_prefix=_BLOCK_PREFIX), strict=False):
                outer_ip, inner_ip = list(block.hosts())[:2]
                name = f"reachable-{index}" if index < count else f"unreachable-{index - count}"
                slot = _Slot(name, f"{NETNS_PREFIX}{token}-{index}", f"cr{token}r{index}",
                             str(inner_ip))
                inner = f"cr{token}n{index}"
                _ip("netns", "add", slot.namespace)
                cleanup.callback(_delete_namespace, slot.namespace)
                _ip("link", "add", slot.veth, "type", "veth", "peer", "name", inner,
                    "netns", slot.namespace)
                cleanup.callback(_delete_link, slot.veth)
                _ip("addr", "add", f"{outer_ip}/{_BLOCK_PREFIX}", "dev", slot.veth)
                _ip("link", "set", slot.veth, "up")
                _ip("-n", slot.namespace, "addr", "add", f"{inner_ip}/{_BLOCK_PREFIX}",
                    "dev", inner)
                _ip("-n", slot.namespace, "link", "set", inner, "up")
                _ip("-n", slot.namespace, "link", "set", "lo", "up")
                slots.append(slot)

        # Start every sshd first, then wait for them all: they come up in parallel.
        started: list[tuple[subprocess.Popen[bytes], Path]] = []
        for slot in slots[:count]:
            config = _sshd_config(root / slot.name, slot.address, port, authorized_keys)
            log = root / slot.name / "sshd.log"
            with log.open("wb") as stderr:
                process = subprocess.Popen(
                    ["ip", "netns", "exec", slot.namespace, str(SSHD), "-D", "-e",
                     "-f", str(config)],
                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr,
                    start_new_session=True,
                )
            # `ip netns exec` execs the command, so this PID is the sshd listener itself.
            cleanup.callback(_stop_sshd, process, slot.namespace)
            started.append((process, log))
        for slot, (process, log) in zip(slots, started, strict=False):
            _wait_for_ssh(slot.address, port, process, log, timeout)

        hosts = [SshHost(slot.name, slot.address, port, user, key_path, process.pid,
                         slot.namespace, slot.veth)
                 for slot, (process, _) in zip(slots, started, strict=False)]
        dead = [SshHost(slot.name, slot.address, port, user, key_path, None, slot.namespace,
                        slot.veth) for slot in slots[count:]]
        yield SshFleet(hosts, dead, private_key, key_path, token, subnet)


@dataclass(frozen=True)
class _Slot:
    name: str
    namespace: str
    veth: str
    address: str


def _ip(*args: str) -> str:
    result = subprocess.run(["ip", *args], capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)} failed: {result.stderr.strip()}")
    return result.stdout


def _client_key(root: Path) -> tuple[Path, str, str]:
    """An ed25519 key pair; the private half in a 0600 file, since ssh ignores looser ones."""
    private = Ed25519PrivateKey.generate()
    text = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                 serialization.NoEncryption()).decode()
    public = private.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                               serialization.PublicFormat.OpenSSH).decode()
    path = root / "id_ed25519"
    _write_private(path, text)
    return path, text, f"{public} craton-tests"


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)


def _ensure_privsep_dir() -> None:
    """sshd exits with "Missing privilege separation directory: /run/sshd" without it; on a
    machine without systemd nobody else creates it. Never removed: others may rely on it."""
    with contextlib.suppress(FileExistsError):
        PRIVSEP_DIR.mkdir(mode=0o755)
        os.chmod(PRIVSEP_DIR, 0o755)


def _sshd_config(directory: Path, address: str, port: int, authorized_keys: Path) -> Path:
    """A self-contained sshd config: its own host key, PID file and authorized keys, listening
    only on the namespace address. StrictModes is off because pytest's temporary directories
    are not the root-owned path sshd would demand; PAM is off so no system policy applies."""
    directory.mkdir()
    host_key = directory / "ssh_host_ed25519_key"
    _write_private(host_key, Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption()).decode())
    lines = [
        f"ListenAddress {address}:{port}",
        f"HostKey {host_key}",
        f"PidFile {directory / 'sshd.pid'}",
        f"AuthorizedKeysFile {authorized_keys}",
        "PermitRootLogin prohibit-password",
        "PubkeyAuthentication yes",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "StrictModes no",
        "UsePAM no",
        "UseDNS no",
        "PrintMotd no",
        "PrintLastLog no",
        "X11Forwarding no",
        "MaxStartups 100",
        "Subsystem sftp internal-sftp",
    ]
    if _sshd_version() >= (9, 8):
        # Newer sshd penalises sources whose connections do not authenticate (our readiness
        # probe does exactly that); all test traffic comes from one address.
        lines.append("PerSourcePenalties no")
    config = directory / "sshd_config"
    config.write_text("\n".join(lines) + "\n")
    return config


@functools.cache
def _sshd_version() -> tuple[int, int]:
    output = subprocess.run([str(SSHD), "-V"], capture_output=True, text=True).stderr
    match = re.search(r"OpenSSH_(\d+)\.(\d+)", output)
    return (int(match.group(1)), int(match.group(2))) if match else (0, 0)


@contextlib.contextmanager
def _address_lock(timeout: float) -> Iterator[None]:
    """Held while a subnet is chosen and its addresses assigned, so two runs starting together
    cannot both find the same /24 free."""
    lock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                lock.bind(_LOCK_NAME)
                break
            except OSError as error:
                if error.errno != errno.EADDRINUSE or time.monotonic() > deadline:
                    raise
                time.sleep(0.02)
        yield
    finally:
        lock.close()


def _pick_subnet() -> ipaddress.IPv4Network:
    """A random /24 of POOL that no address or route of the root namespace touches. Routes
    covering all of POOL (a VPN's 10.0.0.0/8, say) are tolerated: our /30s are more specific."""
    used = _used_networks()
    candidates = list(POOL.subnets(new_prefix=24))
    random.shuffle(candidates)
    for candidate in candidates:
        if not any(candidate.overlaps(network) and not POOL.subnet_of(network)
                   for network in used):
            return candidate
    raise RuntimeError(f"no free /24 left in {POOL}")


def _used_networks() -> list[ipaddress.IPv4Network]:
    networks = []
    for link in json.loads(_ip("-j", "-4", "addr", "show")):
        for info in link.get("addr_info", []):
            networks.append(ipaddress.IPv4Interface(f"{info['local']}/{info['prefixlen']}").network)
    for route in json.loads(_ip("-j", "-4", "route", "show", "table", "all")):
        destination = route.get("dst", "default")
        if destination != "default":
            networks.append(ipaddress.IPv4Network(destination, strict=False))
    return networks


def _wait_for_ssh(address: str, port: int, process: subprocess.Popen[bytes], log: Path,
                  timeout: float) -> None:
    """Ready means the SSH banner arrives over the veth from the root namespace — the path
    Ansible will take — not merely that the process is alive."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"sshd in {address} exited with {process.returncode}: "
                               f"{log.read_text()[-2000:]}")
        with contextlib.suppress(OSError), \
                socket.create_connection((address, port), timeout=0.5) as connection:
            if connection.recv(8).startswith(b"SSH-"):
                return
        time.sleep(0.02)
    raise RuntimeError(f"no SSH banner from {address}:{port} after {timeout}s: "
                       f"{log.read_text()[-2000:]}")


def _stop_sshd(process: subprocess.Popen[bytes], namespace: str) -> None:
    """SIGTERM (then SIGKILL) the sshd we started. Its session children outlive it, so any
    process still in our namespace — by construction one the sshd forked — is stopped too."""
    services.stop(process, timeout=5.0)
    _stop_namespace_processes(namespace)


def _stop_namespace_processes(namespace: str) -> None:
    pids = _namespace_pids(namespace)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + 5.0
        while pids and time.monotonic() < deadline:
            pids = [pid for pid in pids if _alive(pid)]
            time.sleep(0.02)
        if not pids:
            return


def _namespace_pids(namespace: str) -> list[int]:
    if not (Path("/run/netns") / namespace).exists():
        return []
    return [int(pid) for pid in _ip("netns", "pids", namespace).split()]


def _alive(pid: int) -> bool:
    """A zombie has exited: it only waits for a parent (not us) to reap it."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _delete_link(name: str) -> None:
    if Path("/sys/class/net", name).exists():
        _ip("link", "delete", name)


def _delete_namespace(namespace: str) -> None:
    """Any process we left inside would keep the namespace (and its veth end) alive after the
    name is gone, so they are stopped first."""
    _stop_namespace_processes(namespace)
    if (Path("/run/netns") / namespace).exists():
        _ip("netns", "delete", namespace)
