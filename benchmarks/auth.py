"""What authentication costs a request: GET one host under noauth, with an API key
(``[api] auth_strategy = apikey``) and with a Keystone token (``keystone``: a real Keystone
started for the run from .venv-openstack, the token cached by auth_token after its first
check, as it is in service), in one run, on one SQLite database, through the WSGI app
in-process (so HTTP parsing, which is the same for all, does not blur the difference).
Requests alternate between the apps, so drift in the machine's load hits all alike.

Target (issue 12): the API key and a cached Keystone token each add <= 1 ms per request at
p50. Every app decides every check with oslo.policy (craton.policy); the last lines give what
one check costs, as Craton makes it (a decision kept per rule and caller until the rules
change) and as oslo.policy's Enforcer makes it alone, and how many checks a GET of one host
makes.

    python benchmarks/auth.py [--requests 3000] [--no-keystone]
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import tempfile
import time
from pathlib import Path

from flask.testing import FlaskClient

from craton.api import create_app
from craton.config import ApiSettings, DefaultSettings, KeystoneSettings, Settings
from craton.context import ADMIN, Action, RequestContext
from craton.db import migrate
from craton.db.models import Tenant
from craton.db.session import Database
from craton.identity import apikeys
from craton.policy import Policy
from tests.openstack import Keystone, keystone_server


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--no-keystone", action="store_true",
                        help="leave Keystone out (it takes ~30 s to start)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory, contextlib.ExitStack() as stack:
        data = Path(directory)
        keystone = None if args.no_keystone else stack.enter_context(
            keystone_server(data / "keystone", token_lifetime=3600))
        db = Database(f"sqlite:///{data / 'craton.db'}")
        migrate.upgrade(db.engine)
        noauth = create_app(Settings(DEFAULT=DefaultSettings(data_dir=str(data))), database=db)
        keyed_settings = Settings(DEFAULT=DefaultSettings(data_dir=str(data)),
                                  api=ApiSettings(auth_strategy="apikey"))
        keyed = create_app(keyed_settings, database=db)

        plain = noauth.test_client()
        tenant = plain.post("/v1/tenants", json={"name": "bench"}).get_json()
        region = plain.post(f"/v1/tenants/{tenant['id']}/regions", json={"name": "r"}).get_json()
        host = plain.post(f"/v1/regions/{region['id']}/hosts", json={"name": "h"}).get_json()
        with db.transaction() as session:
            _, key = apikeys.create_key(
                session, ADMIN, apikeys.read_or_create_hash_key(
                    keyed_settings.apikey_hash_key_file),
                tenant_id=tenant["id"], name="bench", role="reader")

        url = f"/v1/hosts/{host['id']}"
        calls = {
            "noauth": (plain, {"X-Craton-Tenant": str(tenant["id"]),
                               "X-Craton-Roles": "reader"}),
            "apikey": (keyed.test_client(), {"Authorization": f"Bearer {key}"}),
        }
        if keystone is not None:
            calls["keystone"] = keystone_client(keystone, data, db, tenant["id"])
        samples: dict[str, list[float]] = {name: [] for name in calls}
        for round_ in range(args.requests + 200):
            for name, (client, headers) in calls.items():
                started = time.perf_counter()
                response = client.get(url, headers=headers)
                elapsed = time.perf_counter() - started
                assert response.status_code == 200, response.get_json()
                if round_ >= 200:  # warm-up: connections pooled, code paths compiled
                    samples[name].append(elapsed * 1000)
        checks = count_checks(noauth, plain, url, calls["noauth"][1])
        db.dispose()

    print(f"GET {url}, {args.requests} requests each, alternating")
    for name, values in samples.items():
        print(f"  {name:7} p50 {percentile(values, 0.50):6.3f} ms   "
              f"p99 {percentile(values, 0.99):6.3f} ms   mean {statistics.mean(values):6.3f} ms")
    for name, what in (("apikey", "the API key"), ("keystone", "a cached Keystone token")):
        if name in samples:
            added = percentile(samples[name], 0.5) - percentile(samples["noauth"], 0.5)
            print(f"  {what} adds {added:.3f} ms at p50 (target <= 1 ms)")
    kept, alone = check_costs()
    print(f"policy: checks per GET: {checks}; a check costs {kept:.1f} us as Craton makes it, "
          f"{alone:.1f} us by oslo.policy's Enforcer alone")


def keystone_client(keystone: Keystone, data: Path, db: Database,
                    tenant_id: int) -> tuple[FlaskClient, dict[str, str]]:
    """An app behind auth_token for ``keystone``, and the headers of a reader of the project
    that tenant ``tenant_id`` records."""
    service = keystone.project("service")
    service_user = keystone.user("craton", "craton-password")
    keystone.grant(service_user["id"], "service", project_id=service["id"])
    project = keystone.project("bench")
    with db.transaction() as session:
        session.get(Tenant, tenant_id).keystone_project_id = project["id"]
    reader = keystone.user("reader", "reader-password")
    keystone.grant(reader["id"], "reader", project_id=project["id"])
    authtoken = {
        "www_authenticate_uri": f"{keystone.url}/v3", "auth_url": f"{keystone.url}/v3",
        "auth_type": "password", "username": "craton", "password": "craton-password",
        "project_name": "service", "user_domain_name": "Default",
        "project_domain_name": "Default", "interface": "public"}
    settings = Settings(DEFAULT=DefaultSettings(data_dir=str(data)),
                        api=ApiSettings(auth_strategy="keystone"), keystone=KeystoneSettings(),
                        keystone_authtoken=tuple(authtoken.items()))
    app = create_app(settings, database=db)
    token = keystone.token("reader", "reader-password", project_id=project["id"])
    return app.test_client(), {"X-Auth-Token": token.value}


def count_checks(app, client, url, headers) -> int:
    """The policy checks one GET makes (the app's Policy, counted from outside)."""
    policy = app.extensions["craton"].policy
    counted = []
    allows = policy.allows

    def counting(action, credentials):
        counted.append(action)
        return allows(action, credentials)

    policy.allows = counting
    try:
        client.get(url, headers=headers)
    finally:
        del policy.allows
    return len(counted)


def check_costs(rounds: int = 20000) -> tuple[float, float]:
    """Microseconds per check: through RequestContext.can (decisions kept), and by the
    Enforcer itself."""
    policy = Policy()
    ctx = RequestContext(tenant_id=1, roles=frozenset({"reader"}), policy=policy)
    started = time.perf_counter()
    for _ in range(rounds):
        ctx.can(Action.WRITE)
    kept = (time.perf_counter() - started) / rounds * 1e6
    credentials = dict(ctx.credentials)
    started = time.perf_counter()
    for _ in range(rounds // 10):
        policy.enforcer.enforce(Action.WRITE, {}, credentials)
    alone = (time.perf_counter() - started) / (rounds // 10) * 1e6
    return kept, alone


if __name__ == "__main__":
    main()
