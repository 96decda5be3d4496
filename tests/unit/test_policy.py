"""The authorization rules (craton.policy): the documented defaults per role, the checked-in
sample that oslo.policy's own generator writes from them, and policy.yaml overrides."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from craton.context import Action, RequestContext
from craton.policy import Policy, PolicyError, list_rules

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "etc" / "policy.yaml.sample"
GENERATOR = Path(sys.executable).parent / "oslopolicy-sample-generator"

# The defaults, written out by hand: who may do what inside the caller's own tenant. Any
# authenticated caller may see who it is (identity:read), whatever its roles.
ANYONE = {"identity:read"}
MEMBER = ANYONE | {"inventory:read", "inventory:write", "jobs:submit", "jobs:cancel",
                   "secrets:use"}
DEFAULTS = {
    "reader": ANYONE | {"inventory:read"},
    "secret-reader": ANYONE | {"inventory:read", "secrets:reveal"},
    "member": MEMBER,
    "admin": MEMBER | {"secrets:reveal", "apikeys:manage"},
    "auditor": ANYONE,
    "": ANYONE,
}


def allowed(policy: Policy, roles: str, *, is_admin: bool = False) -> set[str]:
    ctx = RequestContext(tenant_id=None if is_admin else 1, is_admin=is_admin,
                         roles=frozenset(filter(None, roles.split(","))), policy=policy)
    return {action.value for action in Action if ctx.can(action)}


@pytest.mark.parametrize("role", sorted(DEFAULTS))
def test_defaults_per_role(role: str) -> None:
    assert allowed(Policy(), role) == DEFAULTS[role]


def test_a_cloud_admin_may_do_everything() -> None:
    assert allowed(Policy(), "admin", is_admin=True) == {action.value for action in Action}


def test_roles_add_up() -> None:
    assert allowed(Policy(), "reader,secret-reader") == ANYONE | {"inventory:read",
                                                                  "secrets:reveal"}


def test_every_permission_has_a_documented_rule() -> None:
    documented = {rule.name: rule for rule in list_rules()}
    for action in Action:
        rule = documented[action.value]
        assert rule.description and rule.operations, action


def test_checked_in_sample_is_what_the_generator_writes() -> None:
    """etc/policy.yaml.sample is oslopolicy-sample-generator's output for Craton's entry point
    (so the documented defaults cannot drift from the rules in force)."""
    generated = subprocess.run([str(GENERATOR), "--namespace", "craton"], check=True,
                               capture_output=True, text=True, env=os.environ).stdout
    assert "inventory:write" in generated
    assert generated == SAMPLE.read_text(), (
        "etc/policy.yaml.sample is stale: regenerate it with `.venv/bin/oslopolicy-sample-"
        "generator --namespace craton --output-file etc/policy.yaml.sample`")


def test_a_policy_file_overrides_and_is_reread_when_it_changes(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text('"inventory:write": "rule:cloud_admin or rule:tenant_admin"\n')
    policy = Policy(path)
    assert allowed(policy, "member") == MEMBER - {"inventory:write"}
    assert "inventory:write" in allowed(policy, "admin")

    path.write_text('"secrets:reveal": "role:member"\n')
    stat = path.stat()
    os.utime(path, (stat.st_atime, stat.st_mtime + 5))
    assert allowed(policy, "member") == MEMBER | {"secrets:reveal"}


def test_an_empty_policy_file_keeps_the_defaults(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text("# nothing overridden\n")
    assert allowed(Policy(path), "member") == DEFAULTS["member"]


@pytest.mark.parametrize(("content", "reason"), [
    ('"inventory:wrte": "role:member"\n', "unknown rules: inventory:wrte"),
    ("- a list\n", "must be a mapping"),
    ('"inventory:read": [unclosed\n', "is not YAML"),
    ('"inventory:read": "rule:no_such_rule"\n', "not defined"),
    ('"tenant_admin": "rule:tenant_member"\n', "cycle"),
])
def test_a_policy_file_that_cannot_be_used_is_refused(
        tmp_path: Path, content: str, reason: str) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(content)
    with pytest.raises(PolicyError, match=reason):
        Policy(path)


def test_a_missing_policy_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="cannot read"):
        Policy(tmp_path / "nowhere.yaml")


@pytest.mark.parametrize("command", ["craton-api", "craton-worker"])
def test_the_servers_refuse_to_start_with_a_broken_policy_file(
        tmp_path: Path, command: str) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text('"inventory:wirte": "role:member"\n')
    env = {**os.environ, "CRATON_POLICY_FILE": str(path),
           "CRATON_DATA_DIR": str(tmp_path / "data"), "CRATON_CONFIG": ""}
    done = subprocess.run([str(Path(sys.executable).parent / command)], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    assert f"{command}: [policy] file: {path} names unknown rules: inventory:wirte" in done.stderr
