"""A job runs with its submitter's rights, not as admin: its bundle holds its hosts' secrets
only when the submitter may use them (secrets:use) — otherwise the job is refused, naming the
hosts, or runs without them when it asks for ``"secrets": "omit"`` — and its craton_audit
write-backs are written only when the submitter may write the inventory. Real jobs, run by
ansible-playbook in the sandbox; what a job ran with is read from its kept work directory."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from pathlib import Path

from craton.config import PolicySettings
from craton.db import migrate
from craton.db.session import Database
from tests.conftest import error_of
from tests.functional.job_helpers import (
    Body,
    JobApp,
    app_on,
    events,
    host_events,
    job_body,
    job_settings,
    make_fleet,
    play,
    read_stream,
    run_job,
    submit,
    wait_job,
)

# Members run jobs but may not use secrets; tenant admins may.
ADMINS_USE_SECRETS = '"secrets:use": "rule:cloud_admin or rule:tenant_admin"\n'


@contextlib.contextmanager
def rights_app(tmp_path: Path, policy: str | None = None, **jobs: object) -> Iterator[JobApp]:
    """An app of its own (SQLite) that keeps jobs' work directories, with ``policy`` as its
    policy.yaml."""
    data = tmp_path / "data"
    data.mkdir(parents=True)
    db = Database(f"sqlite:///{data / 'craton.db'}")
    migrate.upgrade(db.engine)
    settings = job_settings(data, keep_work_dirs=True, **jobs)
    if policy is not None:
        (tmp_path / "policy.yaml").write_text(policy)
        settings = dataclasses.replace(
            settings, policy=PolicySettings(file=str(tmp_path / "policy.yaml")))
    try:
        with app_on(db, settings) as built:
            yield built
    finally:
        db.dispose()


def fleet_with_secrets(japp: JobApp) -> tuple[Body, dict[str, int]]:
    """A local fleet of three hosts; db-1 and db-2 hold a password secret."""
    fleet = make_fleet(japp.client, ["web-1", "db-1", "db-2"])
    for name in ("db-1", "db-2"):
        japp.client.create(f"/v1/hosts/{fleet.hosts[name]['id']}/secrets",
                           {"name": "root-pw", "kind": "password", "content": f"pw-{name}"})
    return fleet, {"tenant": fleet.tenant["id"], "region": fleet.region_id}


def bundle_secrets(japp: JobApp, job_id: int) -> dict[str, str]:
    """The secret files the job's bundle held, by path below secrets/."""
    root = japp.settings.jobs_dir / str(job_id) / "bundle" / "secrets"
    return {str(path.relative_to(root)): path.read_text()
            for path in sorted(root.rglob("*")) if path.is_file()} if root.exists() else {}


def ping(fleet: Body, **fields: object) -> Body:
    return {"region_id": fleet.region_id, "playbook": "craton:ping", **fields}


def test_a_job_without_secrets_use_is_refused_naming_the_hosts(tmp_path: Path) -> None:
    """A member who may not use secrets submits a job over hosts two of which hold secrets:
    403 naming secrets:use and those hosts, and no job is recorded; a selection without such
    hosts runs."""
    with rights_app(tmp_path, ADMINS_USE_SECRETS) as japp:
        fleet, ids = fleet_with_secrets(japp)
        as_member = {"tenant": ids["tenant"], "roles": "member"}

        refused = japp.client.post("/v1/jobs", ping(fleet), **as_member)
        assert refused.status_code == 403
        error = error_of(refused)
        assert "secrets:use" in error["message"]
        assert "db-1, db-2;" in error["message"] and "web-1" not in error["message"]
        assert '"secrets": "omit"' in error["message"]
        assert error["fields"] == {"secrets": "hosts with secrets: db-1, db-2"}
        assert "pw-db" not in refused.get_data(as_text=True)
        assert japp.client.get("/v1/jobs").get_json()["items"] == []

        job = run_job(japp.client, ping(fleet, filters={"name": "web-*"}))
        assert job["status"] == "succeeded"


def test_secrets_omit_runs_the_job_without_them(tmp_path: Path) -> None:
    """With "secrets": "omit" the same member's job runs, over every host, and its bundle
    holds no secret."""
    with rights_app(tmp_path, ADMINS_USE_SECRETS) as japp:
        fleet, ids = fleet_with_secrets(japp)
        response = japp.client.post("/v1/jobs", ping(fleet, secrets="omit"),
                                    tenant=ids["tenant"], roles="member")
        assert response.status_code == 202, response.get_json()
        job = run_job_done(japp, response.get_json()["id"])
        assert job["status"] == "succeeded" and job["secrets"] == "omitted"
        assert job["hosts"]["total"] == 3
        assert bundle_secrets(japp, job["id"]) == {}


def test_a_submitter_who_may_use_secrets_gets_them_in_the_bundle(tmp_path: Path) -> None:
    """A tenant admin (who may use secrets under the same policy) runs the job with the hosts'
    secrets in its bundle, and the job says it acted as its submitter."""
    with rights_app(tmp_path, ADMINS_USE_SECRETS) as japp:
        fleet, ids = fleet_with_secrets(japp)
        response = japp.client.post("/v1/jobs", ping(fleet), tenant=ids["tenant"],
                                    roles="admin", headers={"X-Craton-User": "alice"})
        assert response.status_code == 202, response.get_json()
        job = run_job_done(japp, response.get_json()["id"])
        assert job["status"] == "succeeded" and job["secrets"] == "included"
        assert job["created_by"] == "alice"
        assert bundle_secrets(japp, job["id"]) == {"db-1/root-pw": "pw-db-1",
                                                   "db-2/root-pw": "pw-db-2"}


def test_by_default_a_member_runs_jobs_with_secrets(tmp_path: Path) -> None:
    """The default policy lets members use secrets in jobs (README: and so read them)."""
    with rights_app(tmp_path) as japp:
        fleet, ids = fleet_with_secrets(japp)
        response = japp.client.post("/v1/jobs", ping(fleet), tenant=ids["tenant"],
                                    roles="member")
        assert response.status_code == 202, response.get_json()
        job = run_job_done(japp, response.get_json()["id"])
        assert sorted(bundle_secrets(japp, job["id"])) == ["db-1/root-pw", "db-2/root-pw"]


HOLD = play("""
name: hold
ansible.builtin.wait_for:
  path: "{{ release }}"
  timeout: 60
""")


def test_a_policy_tightened_after_submission_holds_when_the_job_runs(tmp_path: Path) -> None:
    """The job's rights are its submitter's roles, checked against the policy in force when
    its bundle is built: a job submitted while members could use secrets, built after the
    policy took that away, runs without them."""
    with rights_app(tmp_path, "", concurrent_jobs=1) as japp:
        fleet, ids = fleet_with_secrets(japp)
        sources = japp.sources_of(fleet.tenant)
        sources.mkdir(parents=True, exist_ok=True)
        (sources / "hold.yml").write_text(HOLD)
        release = japp.shared / "release"
        # The engine runs one job at a time: this one holds it until released.
        holder = submit(japp.client, job_body(fleet, "hold.yml", {"path": str(sources)},
                                              filters={"name": "web-1"},
                                              extra_vars={"release": str(release)}))
        wait_job(japp.client, holder["id"], until=["running"])
        response = japp.client.post("/v1/jobs", ping(fleet), tenant=ids["tenant"],
                                    roles="member")
        assert response.status_code == 202, response.get_json()
        (tmp_path / "policy.yaml").write_text(ADMINS_USE_SECRETS)
        release.touch()

        job = run_job_done(japp, response.get_json()["id"])
        assert job["status"] == "succeeded"
        assert bundle_secrets(japp, job["id"]) == {}


AUDIT = play("""
name: record
ansible.builtin.set_fact:
  craton_audit:
    checked: true
""")


def test_audit_write_backs_are_the_submitters_writes(tmp_path: Path) -> None:
    """A job's craton_audit facts are written only when its submitter may write the
    inventory: under a policy that lets readers run jobs, a reader's job has them refused,
    saying why; a member's are written."""
    policy = '"jobs:submit": "rule:cloud_admin or rule:tenant_reader"\n'
    with rights_app(tmp_path, policy) as japp:
        fleet = make_fleet(japp.client, ["a1"])
        sources = japp.sources_of(fleet.tenant)
        sources.mkdir(parents=True, exist_ok=True)
        (sources / "audit.yml").write_text(AUDIT)
        host = fleet.hosts["a1"]
        for role in ("reader", "member"):
            response = japp.client.post(
                "/v1/jobs", job_body(fleet, "audit.yml", {"path": str(sources)}),
                tenant=fleet.tenant["id"], roles=role)
            assert response.status_code == 202, response.get_json()
            job = run_job_done(japp, response.get_json()["id"])
            assert job["status"] == "succeeded"
            (audit,) = host_events(events(japp.client, job["id"]), "a1", "audit")
            variables = japp.client.get(f"/v1/hosts/{host['id']}/variables").get_json()
            if role == "member":
                assert audit["data"] == {"variables": ["checked"]}
                assert variables["variables"] == {"checked": True}
            else:
                assert audit["data"] == {"variables": [], "refused": {
                    "checked": "the job's submitter may not write the inventory "
                               "(inventory:write)"}}
                assert variables["variables"] == {}


def run_job_done(japp: JobApp, job_id: int) -> Body:
    """Follow a submitted job's events to the end; the job as it finished."""
    stream = read_stream(japp.client, job_id)
    assert stream.ended, stream
    return japp.client.get(f"/v1/jobs/{job_id}").get_json()


def bundle_text(japp: JobApp, job_id: int) -> str:
    """Every file of the inventory the job's bundle held, as one text."""
    root = japp.settings.jobs_dir / str(job_id) / "bundle" / "inventory"
    return "\n".join(path.read_text() for path in sorted(root.rglob("*")) if path.is_file())


def test_sensitive_variables_reach_a_job_under_the_rule_of_secrets(tmp_path: Path) -> None:
    """A job's bundle holds sensitive variables' values (of its hosts, their groups and the
    region) when its submitter may use secrets, "<hidden>" when the job omits them; a
    submitter who may not use secrets is refused, naming what holds them."""
    with rights_app(tmp_path, ADMINS_USE_SECRETS) as japp:
        fleet = make_fleet(japp.client, ["web-1", "db-1"], groups=[
            {"name": "dbs", "hosts": ["db-1"], "variables": {"dbs_token": "gt-s3cret"}}])
        db = fleet.hosts["db-1"]["id"]
        assert japp.client.patch(f"/v1/hosts/{db}/variables", {"variables": {
            "ansible_become_password": "become-s3cret"}}).status_code == 200
        member = {"tenant": fleet.tenant["id"], "roles": "member"}

        refused = japp.client.post("/v1/jobs", ping(fleet), **member)
        assert refused.status_code == 403
        assert "db-1, group dbs;" in error_of(refused)["message"]

        omitted = japp.client.post("/v1/jobs", ping(fleet, secrets="omit"), **member)
        assert omitted.status_code == 202, omitted.get_json()
        job = run_job_done(japp, omitted.get_json()["id"])
        assert job["status"] == "succeeded"
        text = bundle_text(japp, job["id"])
        assert "<hidden>" in text and "s3cret" not in text

        included = japp.client.post("/v1/jobs", ping(fleet), tenant=fleet.tenant["id"],
                                    roles="admin")
        assert included.status_code == 202, included.get_json()
        job = run_job_done(japp, included.get_json()["id"])
        assert job["status"] == "succeeded"
        text = bundle_text(japp, job["id"])
        assert "become-s3cret" in text and "gt-s3cret" in text and "<hidden>" not in text
