"""The job sandbox: ansible-playbook, and everything it starts on the controller, runs inside
bubblewrap (``bwrap``, Debian's ``bubblewrap``).

Everything a tenant writes — playbooks, host and group variables — is code to Ansible:
ansible-core templates inventory variables, so ``{{ lookup('pipe', …) }}`` in
``ansible_python_interpreter`` runs on the controller even for the built-in ping playbook, and
so do ``delegate_to: localhost`` tasks and an SSH ``ProxyCommand``. The sandbox is what makes
that safe. Inside it a run sees:

- its own private data directory and project directory (read-write, at the same paths), and
  nothing else of the job directory, the data directory, the database, the secrets key, the
  configuration, other jobs or the worker's home;
- the system's programs and libraries read-only (``/usr``), this Python and its virtualenv
  read-only (Ansible and ansible-runner's callback live there), and an allow-list of ``/etc``
  files (name resolution, TLS roots, SSH client configuration, the known-hosts file);
- a private ``/tmp`` (also ``HOME``), a private ``/proc`` of its own process tree, a minimal
  ``/dev``;
- an environment of Ansible's and ansible-runner's variables only: none of Craton's.

It runs as ``nobody`` (uid 65534) in a user namespace with no capabilities, in its own PID,
IPC and cgroup namespaces and its own session, and dies with the run. It shares the host's
network, since reaching the fleet over SSH is its job — which is why Craton's own services on
loopback must require credentials the sandbox does not hold (``craton.config`` refuses a Redis
or networked database URL without a password while the sandbox is on).

What it does not protect against: a kernel exploit (bubblewrap is a thin layer over kernel
namespaces); anything reachable over the network, including services on loopback that need no
credentials and abstract Unix sockets; CPU, memory and process-count exhaustion (no cgroup
limits); and, when Craton runs as root, the sandbox's uid maps to root outside, so files it can
see are accessed with root's rights — which is why it sees so few (run Craton as its own user).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

LOG = logging.getLogger(__name__)

BWRAP = "bwrap"
SANDBOX_UID = 65534
SANDBOX_HOME = "/tmp"
CONTROL_PATH_DIR = "/tmp/.craton-cp"
"""SSH control sockets live in the sandbox's private /tmp, so they die with it."""

ETC_FILES = (
    "passwd", "group", "nsswitch.conf", "hosts", "host.conf", "resolv.conf", "gai.conf",
    "services", "protocols", "ld.so.cache", "ld.so.conf", "ld.so.conf.d", "localtime",
    "alternatives", "ssl/certs", "ssl/openssl.cnf", "ca-certificates", "ca-certificates.conf",
    "ssh/ssh_config", "ssh/ssh_config.d", "os-release", "debian_version", "lsb-release",
    "mime.types", "timezone",
)
"""What of /etc a run may read: never the whole directory (it holds Craton's configuration,
SSH host keys, /etc/ssl/private …)."""

ENV_PREFIXES = ("ANSIBLE_", "AWX_", "RUNNER_", "LC_")
ENV_NAMES = frozenset({
    "JOB_ID", "AD_HOC_COMMAND_ID", "PROJECT_UPDATE_ID", "INVENTORY_UPDATE_ID",
    "ORIGINAL_STDOUT_CALLBACK", "LANG", "TERM", "PYTHONUNBUFFERED",
})
"""The variables a run keeps of ansible-runner's environment (which starts as a copy of
Craton's own, settings and credentials included)."""


class SandboxUnavailable(RuntimeError):
    """bubblewrap is missing or cannot create its namespaces here; the message says why."""


@dataclasses.dataclass(frozen=True)
class Sandbox:
    """How runs are confined: the paths besides the run's own that they may read."""

    known_hosts: Path | None = None
    """Bound read-only as /etc/ssh/ssh_known_hosts (ssh's global known-hosts file)."""
    read_only: tuple[Path, ...] = ()
    """Extra paths an operator lets every run read (collections, roles, …)."""
    read_write: tuple[Path, ...] = ()
    """Extra paths an operator lets every run write (a drop box for fetched files, …)."""
    keep_env: Mapping[str, str] = dataclasses.field(default_factory=dict)
    """Variables set on top of the filtered environment."""

    def command(self, command: list[str], *, writable: Iterable[Path], cwd: str) -> list[str]:
        """``command`` wrapped in bwrap, with ``writable`` (the run's own directories) bound
        read-write at the same paths."""
        args = [BWRAP, "--unshare-user", "--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_UID),
                "--unshare-pid", "--unshare-ipc", "--unshare-cgroup-try",
                "--die-with-parent", "--new-session", "--cap-drop", "ALL",
                "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp",
                "--ro-bind", "/usr", "/usr"]
        # Everything else is bound after the private /tmp, so a virtualenv or a job directory
        # below /tmp stays visible.
        for top in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
            path = Path("/") / top
            if path.is_symlink():
                args += ["--symlink", os.readlink(path), str(path)]
            elif path.is_dir():
                args += ["--ro-bind", str(path), str(path)]
        for name in ETC_FILES:
            args += ["--ro-bind-try", f"/etc/{name}", f"/etc/{name}"]
        if self.known_hosts is not None and self.known_hosts.is_file():
            args += ["--ro-bind", str(self.known_hosts), "/etc/ssh/ssh_known_hosts"]
        for path in python_paths() + list(self.read_only):
            args += ["--ro-bind-try", str(path), str(path)]
        for path in self.read_write:
            args += ["--bind-try", str(path), str(path)]
        for path in writable:
            args += ["--bind", str(path), str(path)]
        args += ["--chdir", cwd, "--"]
        return args + command

    def environment(self, env: Mapping[str, str]) -> dict[str, str]:
        """What a run's processes see of ``env`` (ansible-runner's): Ansible's and the
        runner's variables, a PATH of this interpreter's bin and the system's, HOME and TMPDIR
        in the private /tmp."""
        kept = {key: value for key, value in env.items()
                if key.startswith(ENV_PREFIXES) or key in ENV_NAMES}
        kept.update({
            "PATH": f"{os.path.dirname(os.path.abspath(sys.executable))}:/usr/local/bin:/usr/bin:"
                    "/bin",
            "HOME": SANDBOX_HOME, "TMPDIR": SANDBOX_HOME, "USER": "nobody",
            "LOGNAME": "nobody", "ANSIBLE_SSH_CONTROL_PATH_DIR": CONTROL_PATH_DIR,
            "ANSIBLE_LOCAL_TEMP": f"{SANDBOX_HOME}/.ansible/tmp",
        })
        kept.update(self.keep_env)
        return kept


def python_paths() -> list[Path]:
    """This interpreter's installation and virtualenv: Ansible, ansible-runner's callback
    plugin and the modules' interpreter for local hosts live there."""
    found: list[Path] = []
    raws = (sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix,
            os.path.dirname(os.path.dirname(os.path.abspath(sys.executable))))
    # Both as spelled and with links resolved: a venv reached through a symlink is used by
    # its spelled path, its interpreter by the resolved one.
    for path in [Path(os.path.abspath(raw)) for raw in raws] + [Path(raw).resolve()
                                                              for raw in raws]:
        if path != Path("/usr") and Path("/usr") not in path.parents and path not in found:
            found.append(path)
    return found


def check_available() -> None:
    """Raise ``SandboxUnavailable`` unless bwrap can start a sandbox here (installed, and
    allowed to create user namespaces)."""
    if shutil.which(BWRAP) is None:
        raise SandboxUnavailable(
            "[jobs] sandbox = on needs bubblewrap: install it (apt-get install bubblewrap) — "
            "or, only on a machine where every playbook and variable is trusted, set "
            "[jobs] sandbox = off")
    probe = Sandbox().command(["/bin/true"], writable=(), cwd="/")
    try:
        done = subprocess.run(probe, capture_output=True, text=True, timeout=30, env={})
    except (OSError, subprocess.TimeoutExpired) as error:
        raise SandboxUnavailable(f"bubblewrap could not start: {error}") from None
    if done.returncode != 0:
        detail = (done.stderr.strip().splitlines() or ["no message"])[-1]
        raise SandboxUnavailable(
            f"bubblewrap cannot start a sandbox here ({detail}); user namespaces may be "
            "disabled (sysctl kernel.unprivileged_userns_clone=1, user.max_user_namespaces)")


OFF_WARNING = """
##########################################################################################
#  [jobs] sandbox = off: playbooks and inventory variables run UNCONFINED on this machine, #
#  with Craton's rights. Any tenant that can submit a job or write a variable can read    #
#  the database, the secrets key and every tenant's secrets. Use only when every playbook  #
#  and every variable is trusted.                                                          #
##########################################################################################"""


def warn_if_off(sandboxed: bool) -> None:
    if not sandboxed:
        LOG.warning(OFF_WARNING)
