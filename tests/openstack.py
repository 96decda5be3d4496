"""A real Keystone for the tests: pip's ``keystone`` (SQLite, fernet tokens) served by gunicorn
on 127.0.0.1 from ``.venv-openstack`` (scripts/lib.sh's ensure_openstack_venv makes it), set up
with ``keystone-manage`` and stopped by the PID it started. Plus a small client of its REST API
for what the tests make there: projects, users, role grants, tokens and their revocation."""

from __future__ import annotations

import calendar
import contextlib
import dataclasses
import json
import os
import secrets
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tests import services

REPO = Path(__file__).resolve().parents[1]
VENV = Path(os.environ.get("CRATON_TEST_OPENSTACK_VENV", REPO / ".venv-openstack"))
TOKEN_LIFETIME = 20
"""Seconds a Keystone token lives here: short, so a test can watch one expire."""

GUNICORN_CONFIG = """\
import sys
# oslo.config (inside keystone's WSGI app) would read gunicorn's own arguments as its own.
del sys.argv[1:]
"""


def venv_bin(name: str) -> Path:
    path = VENV / "bin" / name
    if not path.exists():
        raise RuntimeError(f"{path} is missing: run scripts/test, whose ensure_openstack_venv "
                           "installs Keystone and Barbican into .venv-openstack")
    return path


@dataclasses.dataclass
class Token:
    value: str
    expires_at: float
    """Seconds since the epoch, from Keystone's answer."""
    project_id: str | None


class Keystone:
    """A running Keystone and the system-scoped admin the bootstrap made."""

    def __init__(self, url: str, admin_password: str, process: subprocess.Popen[bytes],
                 log: Path, token_lifetime: int) -> None:
        self.url = url
        self.admin_password = admin_password
        self.process = process
        self.log = log
        self._admin: Token | None = None
        self.token_lifetime = token_lifetime

    def call(self, method: str, path: str, body: Any = None, *,
             token: str | None = None, headers: dict[str, str] | None = None
             ) -> tuple[int, dict[str, str], Any]:
        request = urllib.request.Request(
            self.url + path, method=method, headers={
                "Content-Type": "application/json", **(headers or {}),
                **({"X-Auth-Token": token} if token else {})},
            data=json.dumps(body).encode() if body is not None else None)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                raw = response.read()
                return response.status, dict(response.headers), json.loads(raw) if raw else None
        except urllib.error.HTTPError as error:
            raw = error.read()
            return error.code, dict(error.headers), json.loads(raw) if raw else None

    def token(self, user: str, password: str, *, project_id: str | None = None,
              system: bool = False) -> Token:
        """A token of ``user`` (domain Default), scoped to a project, to the system, or not."""
        auth: dict[str, Any] = {"identity": {"methods": ["password"], "password": {"user": {
            "name": user, "domain": {"id": "default"}, "password": password}}}}
        if project_id:
            auth["scope"] = {"project": {"id": project_id}}
        elif system:
            auth["scope"] = {"system": {"all": True}}
        status, headers, body = self.call("POST", "/v3/auth/tokens", {"auth": auth})
        assert status == 201, (status, body)
        expires = body["token"]["expires_at"]
        return Token(value=headers["X-Subject-Token"],
                     expires_at=calendar.timegm(time.strptime(expires[:19], "%Y-%m-%dT%H:%M:%S")),
                     project_id=project_id)

    @property
    def admin(self) -> str:
        """A system-scoped admin token, renewed before it expires."""
        if self._admin is None or self._admin.expires_at - time.time() < self.token_lifetime / 2:
            self._admin = self.token("admin", self.admin_password, system=True)
        return self._admin.value

    def make(self, kind: str, body: dict[str, Any]) -> dict[str, Any]:
        """Create a project, user or role; its representation."""
        status, _, answer = self.call("POST", f"/v3/{kind}s", {kind: body}, token=self.admin)
        assert status == 201, (status, answer)
        return answer[kind]

    def project(self, name: str) -> dict[str, Any]:
        return self.make("project", {"name": name, "domain_id": "default"})

    def user(self, name: str, password: str) -> dict[str, Any]:
        return self.make("user", {"name": name, "password": password, "domain_id": "default"})

    def role_id(self, name: str) -> str:
        status, _, answer = self.call("GET", f"/v3/roles?name={name}", token=self.admin)
        assert status == 200 and answer["roles"], (status, answer)
        return answer["roles"][0]["id"]

    def grant(self, user_id: str, role: str, *, project_id: str | None = None) -> None:
        """Give ``user_id`` ``role`` on a project, or on the system when no project is named."""
        target = f"projects/{project_id}" if project_id else "system"
        status, _, answer = self.call(
            "PUT", f"/v3/{target}/users/{user_id}/roles/{self.role_id(role)}", token=self.admin)
        assert status == 204, (status, answer)

    def revoke(self, token: str) -> None:
        status, _, answer = self.call("DELETE", "/v3/auth/tokens", token=self.admin,
                                      headers={"X-Subject-Token": token})
        assert status == 204, (status, answer)


def keystone_manage(config: Path, *args: str) -> None:
    result = subprocess.run([str(venv_bin("keystone-manage")), "--config-file", str(config),
                             *args], capture_output=True, text=True, timeout=300)
    if result.returncode != 0:
        raise RuntimeError(f"keystone-manage {args[0]} failed: {result.stderr[-2000:]}")


@contextlib.contextmanager
def keystone_server(workdir: Path, *, token_lifetime: int = TOKEN_LIFETIME
                    ) -> Iterator[Keystone]:
    """Keystone on a free loopback port: SQLite, fernet tokens living ``token_lifetime`` s,
    the admin user (admin project, and system scope) and its endpoints bootstrapped."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = services.free_port()
    url = f"http://127.0.0.1:{port}"
    config = workdir / "keystone.conf"
    config.write_text(f"""\
[DEFAULT]
log_file = {workdir / 'keystone.log'}
[database]
connection = sqlite:///{workdir / 'keystone.db'}
[token]
provider = fernet
expiration = {token_lifetime}
[identity]
# Fast password checks for tests (the default costs a quarter second per token).
password_hash_rounds = 4
[fernet_tokens]
key_repository = {workdir / 'fernet-keys'}
[fernet_receipts]
key_repository = {workdir / 'fernet-receipts'}
[credential]
key_repository = {workdir / 'credential-keys'}
""")
    admin_password = secrets.token_hex(12)
    keystone_manage(config, "db_sync")
    for setup in ("fernet_setup", "credential_setup"):
        keystone_manage(config, setup, "--keystone-user", "root", "--keystone-group", "root")
    keystone_manage(config, "bootstrap", "--bootstrap-password", admin_password,
                    "--bootstrap-admin-url", f"{url}/v3", "--bootstrap-public-url", f"{url}/v3",
                    "--bootstrap-region-id", "RegionOne")
    (workdir / "gunicorn.conf.py").write_text(GUNICORN_CONFIG)
    log = workdir / "gunicorn.log"
    env = {**services.environment_without_craton(), "OS_KEYSTONE_CONFIG_FILES": str(config)}
    with log.open("ab") as out:
        process = subprocess.Popen(
            [str(venv_bin("gunicorn")), "--config", str(workdir / "gunicorn.conf.py"),
             "--bind", f"127.0.0.1:{port}", "--workers", "2", "--timeout", "120",
             "--no-control-socket", "keystone.wsgi.api:application"],
            stdout=out, stderr=subprocess.STDOUT, env=env, cwd=workdir,
            start_new_session=True)
    try:
        services.wait_for_port(port, process, timeout=120, log=log)
        keystone = Keystone(url, admin_password, process, workdir / "keystone.log",
                            token_lifetime)
        _wait_until_answering(keystone)
        yield keystone
    finally:
        services.stop(process)


def _wait_until_answering(keystone: Keystone, timeout: float = 120) -> None:
    """gunicorn listens before its workers have loaded Keystone: wait for a real answer."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            keystone.admin  # noqa: B018 - issues the first token
            return
        except (OSError, AssertionError):
            if time.monotonic() > deadline or keystone.process.poll() is not None:
                raise
            time.sleep(0.2)


BARBICAN_WSGI = """\
import sys
# oslo.config (inside Barbican) would read gunicorn's own arguments as its own.
del sys.argv[1:]
from paste import deploy
application = deploy.loadapp("config:{paste}")
"""


class Barbican:
    """A running Barbican (SQLite, simple_crypto) behind ``keystone``'s auth_token, its
    endpoint in Keystone's catalog; ``stop()`` and ``start()`` make an outage on the same
    port."""

    def __init__(self, workdir: Path, port: int, workers: int = 1) -> None:
        self.workdir = workdir
        self.port = port
        self.workers = workers
        self.url = f"http://127.0.0.1:{port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = self.workdir / "gunicorn.log"
        # Barbican's plugins read ~/.barbican/barbican.conf: HOME is the work directory.
        env = {**services.environment_without_craton(), "HOME": str(self.workdir)}
        with log.open("ab") as out:
            self.process = subprocess.Popen(
                [str(venv_bin("gunicorn")), "--chdir", str(self.workdir), "--bind",
                 f"127.0.0.1:{self.port}", "--workers", str(self.workers), "--timeout", "120",
                 "--no-control-socket", "barbican_wsgi:application"],
                stdout=out, stderr=subprocess.STDOUT, env=env, cwd=self.workdir,
                start_new_session=True)
        services.wait_for_port(self.port, self.process, timeout=120, log=log)
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(self.url + "/", timeout=10):
                    return
            except urllib.error.HTTPError as error:
                if error.code == 300:  # the versions document: the app is loaded
                    return
                raise
            except OSError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise
                time.sleep(0.2)

    def stop(self) -> None:
        if self.process is not None:
            services.stop(self.process)
            self.process = None

    def holds(self, token: str, secret_id: str) -> bool:
        """Barbican still has the secret ``secret_id`` (asked with ``token``, a token of its
        owner's project)."""
        request = urllib.request.Request(f"{self.url}/v1/secrets/{secret_id}",
                                         headers={"X-Auth-Token": token})
        try:
            with urllib.request.urlopen(request, timeout=30):
                return True
        except urllib.error.HTTPError as error:
            if error.code == 404:
                return False
            raise


@contextlib.contextmanager
def barbican_server(workdir: Path, keystone: Keystone, *, workers: int = 1
                    ) -> Iterator[Barbican]:
    """Barbican on a free loopback port with its stock barbican-api-keystone pipeline, as
    the service user ``barbican`` of ``keystone``, registered there as the key-manager;
    ``workers`` gunicorn workers (one request at a time each)."""
    import base64

    workdir.mkdir(parents=True, exist_ok=True)
    barbican = Barbican(workdir, services.free_port(), workers)
    service_project = keystone.project(f"barbican-service-{secrets.token_hex(3)}")
    password = secrets.token_hex(12)
    user = keystone.user(f"barbican-{secrets.token_hex(3)}", password)
    keystone.grant(user["id"], "service", project_id=service_project["id"])
    service = keystone.make("service", {"type": "key-manager", "name": "barbican"})
    keystone.make("endpoint", {"service_id": service["id"], "interface": "public",
                               "url": barbican.url, "region_id": "RegionOne"})
    paste = workdir / "barbican-api-paste.ini"
    paste.write_text((VENV / "etc" / "barbican" / "barbican-api-paste.ini").read_text())
    (workdir / "barbican_wsgi.py").write_text(BARBICAN_WSGI.format(paste=paste))
    (workdir / ".barbican").mkdir(exist_ok=True)
    kek = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()
    (workdir / ".barbican" / "barbican.conf").write_text(f"""\
[DEFAULT]
host_href = {barbican.url}
db_auto_create = true
log_file = {workdir / 'barbican.log'}
[database]
connection = sqlite:///{workdir / 'barbican.sqlite'}
[secretstore]
enabled_secretstore_plugins = store_crypto
[crypto]
enabled_crypto_plugins = simple_crypto
[simple_crypto_plugin]
kek = {kek}
[keystone_authtoken]
www_authenticate_uri = {keystone.url}/v3
auth_url = {keystone.url}/v3
auth_type = password
username = {user['name']}
password = {password}
project_name = {service_project['name']}
user_domain_name = Default
project_domain_name = Default
interface = public
""")
    barbican.start()
    try:
        yield barbican
    finally:
        barbican.stop()
