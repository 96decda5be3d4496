"""No plaintext secret, API key or token anywhere Craton keeps or says things: craton-api
(``[api] auth_strategy = apikey``, local secret backend, events also in Redis, logging at
DEBUG) is used as a tenant would — API keys made, used and revoked; secrets (PEM blobs,
passwords) and sensitive variables (``ansible_become_password``, ``*_token``, ``*_password``,
one marked sensitive) written and changed; bad requests that carry them; a job whose playbook
prints them, hides one with ``no_log`` and fails on one — and then every place is searched
for each of them: the SQLite files' bytes and their SQL dump, the server's output, every job
event (through the API and in the Redis stream), every change record, every error body and
what a reader's listings answer. A hit fails the test, naming what was found where."""

from __future__ import annotations

import dataclasses
import json
import secrets
import sqlite3
import subprocess
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from tests import services
from tests.integration.test_server import BIN, Reply, Server, craton_environment, running_api

PLAYBOOK = """\
- hosts: all
  gather_facts: false
  tasks:
    - name: read the certificate
      ansible.builtin.command: cat "{{ inventory_dir }}/../secrets/{{ inventory_hostname }}/cert"
      changed_when: false
    - name: use the secrets
      ansible.builtin.debug:
        msg: "token {{ deploy_token }} become {{ ansible_become_password }} db {{ db_password }}"
    - name: use them quietly
      ansible.builtin.debug:
        msg: "{{ region_api_token }} {{ motd_key }}"
      no_log: true
    - name: fail on the password
      ansible.builtin.fail:
        msg: "cannot log in with {{ db_password }}"
      when: inventory_hostname == "web-2"
"""


def marker(what: str) -> str:
    return f"{what}{secrets.token_hex(12)}"


def pem(body_marker: str) -> str:
    return ("-----BEGIN CERTIFICATE-----\n"
            f"MIIBszCCAVmgAwIBAgIU{body_marker}\n"
            "-----END CERTIFICATE-----\n")


@dataclasses.dataclass
class Deployment:
    server: Server
    env: dict[str, str]
    home: Path
    redis: services.Redis
    root: str


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    home = tmp_path_factory.mktemp("craton-plaintext")
    with services.redis_server(home / "redis") as redis_server:
        env = craton_environment(home, CRATON_API_AUTH_STRATEGY="apikey",
                                 CRATON_REDIS_URL=redis_server.url, CRATON_LOG_LEVEL="DEBUG")
        manage(env, "db", "upgrade")
        root = manage(env, "apikey", "create", "--cloud-admin", "--name", "operator"
                      ).stdout.strip()
        with running_api(env, home) as server:
            yield Deployment(server, env, home, redis_server, root)


def manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([str(BIN / "craton-manage"), *args], env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result


@dataclasses.dataclass
class Answer:
    what: str
    key: str
    reply: Reply


class Caller:
    """Requests with one API key, every answer kept (errors and listings are searched)."""

    def __init__(self, server: Server, key: str, answers: list[Answer]) -> None:
        self.server, self.key, self.answers = server, key, answers

    def call(self, method: str, path: str, body: Any = None, *, raw: bytes | None = None,
             expect: int | None = None) -> Reply:
        reply = self.server.call(method, path, body, raw=raw,
                                 headers={"Authorization": f"Bearer {self.key}"})
        self.answers.append(Answer(f"{method} {path} -> {reply.status}", self.key, reply))
        if expect is not None:
            assert reply.status == expect, (method, path, reply.status, reply.body)
        return reply

    def ok(self, method: str, path: str, body: Any = None, status: int = 200) -> Any:
        reply = self.call(method, path, body, expect=status)
        return reply.json() if reply.body else None

    def pages(self, path: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        url: str | None = path
        while url:
            page = self.ok("GET", url)
            items += page["items"]
            url = page["next"]
        return items


def test_no_plaintext_anywhere(deployment: Deployment) -> None:
    server, home = deployment.server, deployment.home
    answers: list[Answer] = []
    root = Caller(server, deployment.root, answers)
    needles: dict[str, str] = {"cloud-admin key": deployment.root}

    tenant = root.ok("POST", "/v1/tenants", {"name": "acme"}, 201)
    keys = {role: root.ok("POST", f"/v1/tenants/{tenant['id']}/apikeys",
                          {"name": f"acme {role}", "role": role}, 201)
            for role in ("admin", "member", "reader")}
    needles.update({f"{role} key": made["key"] for role, made in keys.items()})
    admin = Caller(server, keys["admin"]["key"], answers)
    reader = Caller(server, keys["reader"]["key"], answers)

    values = {name: marker(name.upper().replace("_", "")) for name in (
        "cert", "password", "ansible_become_password", "deploy_token", "db_password",
        "region_api_token", "motd_key")}
    needles.update(values)
    region = admin.ok("POST", f"/v1/tenants/{tenant['id']}/regions", {
        "name": "dfw", "variables": {"region_api_token": values["region_api_token"]}}, 201)
    admin.ok("POST", f"/v1/regions/{region['id']}/groups", {
        "name": "web", "variables": {"deploy_token": "first-" + values["deploy_token"]}}, 201)
    hosts = admin.ok("POST", f"/v1/regions/{region['id']}/hosts", [
        {"name": name, "groups": ["web"], "variables": {
            "ansible_connection": "local", "ansible_python_interpreter": "auto_silent",
            "ansible_become_password": values["ansible_become_password"],
            "db_password": values["db_password"]}} for name in ("web-1", "web-2")], 201)["items"]
    for host in hosts:
        admin.ok("POST", f"/v1/hosts/{host['id']}/secrets",
                 {"name": "cert", "kind": "pem", "content": pem(values["cert"])}, 201)
        admin.ok("POST", f"/v1/hosts/{host['id']}/secrets",
                 {"name": "login", "kind": "password", "content": values["password"]}, 201)
    # Change records of sensitive values: written, replaced, marked.
    group_id = admin.ok("GET", f"/v1/regions/{region['id']}/groups")["items"][0]["id"]
    needles["replaced deploy_token"] = "first-" + values["deploy_token"]
    admin.ok("PATCH", f"/v1/groups/{group_id}/variables",
             {"variables": {"deploy_token": values["deploy_token"]}})
    admin.ok("PATCH", f"/v1/hosts/{hosts[0]['id']}/variables",
             {"variables": {"motd_key": values["motd_key"]}, "sensitive": ["motd_key"]})
    admin.ok("PATCH", f"/v1/hosts/{hosts[1]['id']}/variables",
             {"variables": {"motd_key": values["motd_key"]}, "sensitive": ["motd_key"]})

    provoke_errors(admin, reader, hosts[0]["id"], values, needles)

    source = home / "data" / "sources" / str(tenant["id"]) / "leaky"
    source.mkdir(parents=True)
    (source / "site.yml").write_text(PLAYBOOK)
    job = admin.ok("POST", "/v1/jobs", {"region_id": region["id"], "playbook": "site.yml",
                                        "source": {"path": str(source)}}, 202)
    deadline = time.monotonic() + 120
    while (job := admin.ok("GET", f"/v1/jobs/{job['id']}"))["status"] in ("pending", "running"):
        assert time.monotonic() < deadline, job
        time.sleep(0.3)
    assert job["status"] == "failed" and job["hosts"]["failed"] == 1, job
    events = admin.pages(f"/v1/jobs/{job['id']}/events?limit=500")
    printed = [event for event in events if event["kind"] == "runner_on_ok"
               and "use the secrets" in json.dumps(event)]
    assert len(printed) == 2, "the playbook ran the task that prints the secrets"

    revoked = keys["member"]
    admin.call("DELETE", f"/v1/apikeys/{revoked['id']}", expect=204)
    Caller(server, revoked["key"], answers).call("GET", "/v1/tenants", expect=401)

    # What a reader sees of it all.
    reader.pages(f"/v1/hosts/{hosts[0]['id']}/secrets")
    reader.pages(f"/v1/regions/{region['id']}/hosts")
    reader.ok("GET", f"/v1/hosts/{hosts[0]['id']}/variables?resolved=true")
    reader.ok("GET", f"/v1/regions/{region['id']}/variables")
    reader.pages("/v1/jobs")
    reader.ok("GET", f"/v1/inventory/{region['id']}.json")

    changes = root.pages("/v1/changes?limit=500")
    assert any(change["object_type"] == "group" and change["action"] == "update"
               for change in changes)

    everywhere = {"error bodies": _texts(a for a in answers if a.reply.status >= 400),
                  "reader's answers": _texts(a for a in answers if a.key == reader.key
                                             and a.reply.status < 400),
                  "job events": json.dumps(events), "change records": json.dumps(changes),
                  "redis": _redis_contents(deployment.redis),
                  "server output": server.log.read_bytes().decode(errors="replace")}
    database = home / "data" / "craton.db"
    at_rest = {"database files": b"".join(path.read_bytes() for path in sorted(
        database.parent.glob("craton.db*"))).decode("latin-1"),
        "database dump": _dump(database)}

    key_material = {f"{name} (secret part)": key.rpartition("_")[2]
                    for name, key in needles.items() if key.startswith("craton_")}
    hash_key = (home / "data" / "apikey-hash.key").read_text().strip()
    fernet_key = (home / "data" / "secrets.key").read_text().strip()
    digests = {f"digest of key {key_id}": digest for key_id, digest in sqlite3.connect(
        database).execute("SELECT key_id, digest FROM api_keys")}
    assert len(digests) == 4  # the cloud-admin key and the tenant's three

    hits = [f"{name} in {where}" + (f" ({_around(text, needle)})" if where != "database files"
                                    else "") for where, text in {**everywhere, **at_rest}.items()
            for name, needle in {**needles, **key_material, "API-key hash key": hash_key,
                                 "secrets key": fernet_key}.items() if needle in text]
    hits += [f"{name} in {where}" for where, text in everywhere.items()
             for name, needle in digests.items() if needle in text]
    assert not hits, "found:\n" + "\n".join(hits)


def provoke_errors(admin: Caller, reader: Caller, host_id: int, values: dict[str, str],
                   needles: dict[str, str]) -> None:
    """Bad requests that carry secrets: each must fail without saying them back."""
    secrets_path = f"/v1/hosts/{host_id}/secrets"
    admin.call("POST", secrets_path, {"name": "x", "kind": "pem",
                                      "content": "not a pem " + values["cert"]}, expect=422)
    admin.call("POST", secrets_path, {"name": "x", "kind": "password",
                                      "content": values["password"], "note": values["password"]},
               expect=422)
    admin.call("POST", secrets_path, {"name": "x", "kind": values["password"],
                                      "content": values["password"]}, expect=422)
    admin.call("POST", secrets_path, {"name": "x", "kind": "password",
                                      "content": [values["password"]]}, expect=422)
    admin.call("POST", secrets_path, {"name": "login", "kind": "password",
                                      "content": values["password"]}, expect=409)
    admin.call("POST", secrets_path, raw=b'{"name": "x", "kind": "password", "content": "'
               + values["password"].encode() + b'",}', expect=400)
    deep: Any = values["db_password"]
    for _ in range(40):
        deep = [deep]
    admin.call("PATCH", f"/v1/hosts/{host_id}/variables",
               {"variables": {"db_password": deep}}, expect=422)
    admin.call("PATCH", f"/v1/hosts/{host_id}/variables",
               {"variables": {"db_password": values["db_password"] * 4000}}, expect=422)
    admin.call("PATCH", f"/v1/hosts/{host_id}/variables",
               {"variables": {"db_password": values["db_password"]},
                "sensitive": [values["db_password"]]}, expect=422)
    reader.call("POST", f"/v1/secrets/{_first_secret(admin, host_id)}/reveal", expect=403)
    reader.call("PATCH", f"/v1/hosts/{host_id}/variables",
                {"variables": {"db_password": values["db_password"]}}, expect=403)
    wrong = admin.key[:-6] + "abcdef"
    needles["mistyped admin key"] = wrong
    Caller(admin.server, wrong, admin.answers).call("GET", "/v1/tenants", expect=401)
    Caller(admin.server, values["deploy_token"], admin.answers).call("GET", "/v1/tenants",
                                                                     expect=401)


def _first_secret(caller: Caller, host_id: int) -> int:
    return caller.ok("GET", f"/v1/hosts/{host_id}/secrets")["items"][0]["id"]


def _around(text: str, needle: str) -> str:
    """Where ``needle`` is in ``text``: the line around its first occurrence."""
    at = text.index(needle)
    start = text.rfind("\n", 0, at) + 1
    end = text.find("\n", at)
    return text[max(start, at - 150):min(end if end >= 0 else len(text), at + 150)]


def _texts(answers: Iterable[Answer]) -> str:
    return "\n".join(f"{a.what}: {a.reply.body.decode(errors='replace')}" for a in answers)


def _redis_contents(server: services.Redis) -> str:
    client = redis.Redis.from_url(server.url)
    found = []
    for key in client.scan_iter():
        kind = client.type(key).decode()
        if kind == "stream":
            found.append(repr(client.xrange(key)))
        elif kind == "string":
            found.append(repr(client.get(key)))
        elif kind == "hash":
            found.append(repr(client.hgetall(key)))
        elif kind == "list":
            found.append(repr(client.lrange(key, 0, -1)))
        elif kind in ("set", "zset"):
            found.append(repr(client.smembers(key) if kind == "set"
                              else client.zrange(key, 0, -1)))
    client.close()
    assert found, "the job's events went to Redis too"
    return "\n".join(found)


def _dump(database: Path) -> str:
    connection = sqlite3.connect(database)
    try:
        return "\n".join(connection.iterdump())
    finally:
        connection.close()
