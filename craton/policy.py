"""Who may do what: Craton's authorization rules, enforced by oslo.policy.

Each permission is one oslo.policy rule (``inventory:read``, ``inventory:write``, …) with a
documented default built from a few base rules: the tenant roles ``reader``, ``member`` and
``admin`` (and ``secret-reader``) act inside the caller's own tenant; a cloud admin
(``is_admin``) acts in every tenant. An operator overrides any rule in a ``policy.yaml``
(``[policy] file``); ``oslopolicy-sample-generator --namespace craton`` writes the documented
defaults (the checked-in ``etc/policy.yaml.sample``).

Which tenant's objects a caller reaches is not a rule: every query is scoped to the caller's
tenant (``craton.db.scope``), so another tenant's object answers 404 whatever the policy says.

The Enforcer is built once per process (per app) and asked for every check; it reads the
policy file again only when its modification time changes.
"""

from __future__ import annotations

import enum
import functools
import threading
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

import yaml
from oslo_config import cfg
from oslo_policy import policy

from craton.config import ConfigError, load_settings


class Action(enum.StrEnum):
    """A permission: the name of its oslo.policy rule, which a 403 names."""

    READ = "inventory:read"
    WRITE = "inventory:write"
    REVEAL_SECRETS = "secrets:reveal"
    USE_SECRETS = "secrets:use"
    SUBMIT_JOBS = "jobs:submit"
    CANCEL_JOBS = "jobs:cancel"
    MANAGE_TENANTS = "tenants:manage"
    MANAGE_API_KEYS = "apikeys:manage"
    SHOW_IDENTITY = "identity:read"


BASE_RULES = [
    policy.RuleDefault(
        "cloud_admin", "is_admin:True",
        description="A cloud admin: acts in every tenant (a cloud-admin API key, or noauth "
                    "without X-Craton-Tenant)."),
    policy.RuleDefault(
        "tenant_admin", "role:admin",
        description="The admin role in the caller's own tenant."),
    policy.RuleDefault(
        "tenant_member", "role:member or rule:tenant_admin",
        description="The member role (or admin) in the caller's own tenant."),
    policy.RuleDefault(
        "tenant_reader", "role:reader or role:secret-reader or rule:tenant_member",
        description="Any role that reads the caller's own tenant: reader, secret-reader, "
                    "member or admin."),
    policy.RuleDefault(
        "secret_reader", "role:secret-reader or rule:tenant_admin",
        description="The secret-reader role (or admin) in the caller's own tenant."),
]


def _ops(*pairs: str) -> list[dict[str, str]]:
    """``"GET /v1/hosts"`` … as oslo.policy's operations."""
    return [{"method": pair.split(" ", 1)[0], "path": pair.split(" ", 1)[1]} for pair in pairs]


READ_OPERATIONS = _ops(
    "GET /v1/tenants", "GET /v1/tenants/{tenant_id}", "GET /v1/tenants/{tenant_id}/regions",
    "GET /v1/regions", "GET /v1/regions/{region_id}", "GET /v1/regions/{region_id}/variables",
    "GET /v1/regions/{region_id}/hosts", "GET /v1/regions/{region_id}/groups",
    "GET /v1/hosts", "GET /v1/hosts/{host_id}", "GET /v1/hosts/{host_id}/variables",
    "GET /v1/hosts/{host_id}/secrets", "GET /v1/hosts/{host_id}/jobs",
    "GET /v1/hosts/{host_id}/status",
    "GET /v1/groups", "GET /v1/groups/{group_id}", "GET /v1/groups/{group_id}/variables",
    "GET /v1/groups/{group_id}/hosts", "GET /v1/groups/{group_id}/children",
    "GET /v1/groups/{group_id}/references",
    "GET /v1/secrets/{secret_id}", "GET /v1/references/{reference_id}",
    "GET /v1/inventory/{region_id}.{fmt}",
    "GET /v1/jobs", "GET /v1/jobs/{job_id}", "GET /v1/jobs/{job_id}/hosts",
    "GET /v1/jobs/{job_id}/events",
    "GET /v1/changes", "GET /v1/hosts/{host_id}/changes", "GET /v1/groups/{group_id}/changes",
    "GET /v1/regions/{region_id}/changes",
)
WRITE_OPERATIONS = _ops(
    "POST /v1/tenants/{tenant_id}/regions",
    "PATCH /v1/regions/{region_id}", "DELETE /v1/regions/{region_id}",
    "PUT /v1/regions/{region_id}/variables", "PATCH /v1/regions/{region_id}/variables",
    "DELETE /v1/regions/{region_id}/variables/{key}",
    "POST /v1/regions/{region_id}/hosts", "POST /v1/regions/{region_id}/groups",
    "POST /v1/regions/{region_id}/import",
    "PATCH /v1/hosts/{host_id}", "DELETE /v1/hosts/{host_id}",
    "PUT /v1/hosts/{host_id}/variables", "PATCH /v1/hosts/{host_id}/variables",
    "DELETE /v1/hosts/{host_id}/variables/{key}", "POST /v1/hosts/{host_id}/secrets",
    "PATCH /v1/groups/{group_id}", "DELETE /v1/groups/{group_id}",
    "PUT /v1/groups/{group_id}/variables", "PATCH /v1/groups/{group_id}/variables",
    "DELETE /v1/groups/{group_id}/variables/{key}",
    "POST /v1/groups/{group_id}/hosts", "DELETE /v1/groups/{group_id}/hosts",
    "DELETE /v1/groups/{group_id}/hosts/{host_id}",
    "POST /v1/groups/{group_id}/children", "DELETE /v1/groups/{group_id}/children",
    "DELETE /v1/groups/{group_id}/children/{child_id}",
    "POST /v1/groups/{group_id}/references",
    "PATCH /v1/secrets/{secret_id}", "DELETE /v1/secrets/{secret_id}",
    "PATCH /v1/references/{reference_id}", "DELETE /v1/references/{reference_id}",
)

RULES = [
    policy.DocumentedRuleDefault(
        name=Action.READ, check_str="rule:cloud_admin or rule:tenant_reader",
        description="Read the tenant's inventory (regions, hosts, groups, variables, secrets' "
                    "metadata, references, bundles) and its jobs. Every other permission "
                    "needs this one too: a caller who may not read finds nothing.",
        operations=READ_OPERATIONS),
    policy.DocumentedRuleDefault(
        name=Action.WRITE, check_str="rule:cloud_admin or rule:tenant_member",
        description="Create, change and delete the tenant's regions, hosts, groups, "
                    "variables, secrets and references; import inventories.",
        operations=WRITE_OPERATIONS),
    policy.DocumentedRuleDefault(
        name=Action.REVEAL_SECRETS, check_str="rule:cloud_admin or rule:secret_reader",
        description="Read the content of the tenant's secrets: the reveal call, and secrets "
                    "in the bundles the caller downloads.",
        operations=_ops("POST /v1/secrets/{secret_id}/reveal")),
    policy.DocumentedRuleDefault(
        name=Action.USE_SECRETS, check_str="rule:cloud_admin or rule:tenant_member",
        description="Run a job whose hosts have secrets with those secrets in its bundle (SSH "
                    "keys, passwords; also sensitive variables' values). Checked when a job "
                    "is submitted: without it, a job whose hosts hold any is refused, naming "
                    "them, unless it asks for \"secrets\": \"omit\". Whoever may use a "
                    "secret in a playbook can read it (a task can print it or send it "
                    "anywhere): grant this as you would secrets:reveal.",
        operations=_ops("POST /v1/jobs")),
    policy.DocumentedRuleDefault(
        name=Action.SUBMIT_JOBS, check_str="rule:cloud_admin or rule:tenant_member",
        description="Run a playbook over the tenant's hosts. The job runs with its "
                    "submitter's rights (see secrets:use), and its craton_audit write-backs "
                    "are the submitter's writes (inventory:write).",
        operations=_ops("POST /v1/jobs")),
    policy.DocumentedRuleDefault(
        name=Action.CANCEL_JOBS, check_str="rule:cloud_admin or rule:tenant_member",
        description="Cancel any of the tenant's jobs.",
        operations=_ops("POST /v1/jobs/{job_id}/cancel")),
    policy.DocumentedRuleDefault(
        name=Action.MANAGE_API_KEYS, check_str="rule:cloud_admin or rule:tenant_admin",
        description="See, make and revoke the tenant's API keys: who its members are "
                    "under [api] auth_strategy = apikey.",
        operations=_ops("GET /v1/tenants/{tenant_id}/apikeys",
                        "POST /v1/tenants/{tenant_id}/apikeys",
                        "GET /v1/apikeys/{apikey_id}", "DELETE /v1/apikeys/{apikey_id}")),
    policy.DocumentedRuleDefault(
        name=Action.MANAGE_TENANTS, check_str="rule:cloud_admin",
        description="Create, change (quotas included) and delete tenants.",
        operations=_ops("POST /v1/tenants", "PATCH /v1/tenants/{tenant_id}",
                        "DELETE /v1/tenants/{tenant_id}")),
    policy.DocumentedRuleDefault(
        name=Action.SHOW_IDENTITY, check_str="@",
        description="See who the caller is: its user, tenant, roles and the permissions it "
                    "holds (what the web pages show, and the actions they offer). Any "
                    "authenticated caller, whatever its roles: it learns only about itself.",
        operations=_ops("GET /v1/whoami")),
]


def list_rules() -> list[policy.RuleDefault]:
    """Every rule with its default (the ``oslo.policy.policies`` entry point)."""
    return BASE_RULES + RULES


MAX_DECISIONS = 10_000
"""Decisions one policy keeps (one per rule and distinct caller); past it, it starts again."""


class PolicyError(ConfigError):
    """The policy file cannot be used; the message names the file and the reason."""


class Policy:
    """Craton's rules in one oslo.policy Enforcer, overridden by ``policy_file`` when given.

    The file is checked when the policy is built: a rule name Craton does not know (a typo
    would leave the default in force), a rule that refers to one that does not exist and a
    file that is not a YAML mapping are refused."""

    def __init__(self, policy_file: str | Path | None = None) -> None:
        conf = cfg.ConfigOpts()
        conf([], project="craton", default_config_files=[], default_config_dirs=[])
        path = str(Path(policy_file).expanduser().resolve()) if policy_file else None
        if path is not None:
            _check_file(Path(path))
        self.enforcer = policy.Enforcer(conf, policy_file=path, use_conf=True)
        # Only the file Craton names: no policy.d directories searched beside config files.
        conf.set_override("policy_dirs", [], group="oslo_policy")
        self.enforcer.register_defaults(list_rules())
        self.enforcer.load_rules()
        if not self.enforcer.check_rules():
            raise PolicyError(f"[policy] file: {path}: a rule refers to a rule that is not "
                              "defined, or rules refer to each other in a cycle")
        # Without a file there is nothing to re-read: the defaults stay as loaded. With one,
        # the Enforcer looks at its modification time on each check and reloads a change.
        self.enforcer.use_conf = path is not None
        self.policy_file = path
        self._decisions: dict[tuple[Any, ...], bool] = {}
        self._decided_under: policy.Rules | None = None
        self._lock = threading.Lock()

    def allows(self, action: str, credentials: MutableMapping[str, Any]) -> bool:
        """Whether the rule ``action`` allows a caller with ``credentials``. A decision is
        kept until the rules change (oslo.policy's own evaluation inspects every check's
        signature on every call: ~150 µs a rule, several rules a request). One check at a
        time (an uncontended lock costs well under a microsecond): a decision taken under
        the rules a reload has just replaced must not be kept under the new ones."""
        key = (action, *(_hashable(credentials[name]) for name in sorted(credentials)))
        with self._lock:
            if self.enforcer.use_conf:
                self.enforcer.load_rules()  # a stat of the file; a reload when it changed
            if self.enforcer.rules is not self._decided_under:
                self._decisions.clear()
                self._decided_under = self.enforcer.rules
            decision = self._decisions.get(key)
            if decision is None:
                if len(self._decisions) >= MAX_DECISIONS:
                    self._decisions.clear()
                decision = self._decisions[key] = bool(
                    self.enforcer.enforce(action, {}, credentials))
            return decision


def _hashable(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def _check_file(path: Path) -> None:
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as error:
        raise PolicyError(f"[policy] file: cannot read {path}: {error.strerror}") from None
    except yaml.YAMLError as error:
        raise PolicyError(f"[policy] file: {path} is not YAML: {error}") from None
    if data is None:
        return
    if not isinstance(data, dict):
        raise PolicyError(f"[policy] file: {path} must be a mapping of rule names to rules")
    known = {rule.name for rule in list_rules()}
    unknown = sorted(str(name) for name in data if name not in known)
    if unknown:
        raise PolicyError(f"[policy] file: {path} names unknown rules: {', '.join(unknown)}; "
                          f"known: {', '.join(sorted(known))}")


@functools.cache
def default_policy() -> Policy:
    """The documented defaults, without a file: what operator tooling and contexts built
    outside a request (craton-manage, the demo loader) are checked against."""
    return Policy()


def configured_enforcer() -> policy.Enforcer:
    """The Enforcer of this installation's settings, policy.yaml included (the
    ``oslo.policy.enforcer`` entry point, for oslo.policy's tools)."""
    return Policy(load_settings().policy.file or None).enforcer
