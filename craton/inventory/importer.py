"""Import an Ansible inventory into a region, read by Ansible's own inventory loader.

An inventory comes as one file (``ini``, ``yaml``, or ``json`` — the dynamic-inventory JSON a
script prints) or as a directory (``files``: relative path → text, e.g. ``hosts.ini``,
``group_vars/all.yml``, ``host_vars/db1.yml``). It is written to a private temporary directory
and parsed there by ``ansible.inventory.manager.InventoryManager`` with only the ``ini`` and
``yaml`` inventory plugins enabled: nothing an inventory says is executed — no script, no
``plugin:`` configuration (the ``auto`` plugin is off), no executable file — and no value is
templated (Ansible keeps ``{{ … }}`` as text until a play uses it). Dynamic-inventory JSON is
rewritten to the YAML inventory format first (the same groups, hosts, children and variables),
because Ansible's own reader of it, the ``script`` plugin, runs a program.

This module is the one adapter that reaches into ansible-core's internals (a plugin list that
``InventoryManager`` otherwise takes from configuration); tests/integration/test_import.py is
its contract test.

Loading: groups (with their variables and subgroups), hosts (with theirs and their direct
groups) and the ``all`` group's variables (the region's) are created or merged, in the
caller's transaction, through the same domain functions as the API — so every name rule,
limit, quota and cycle check applies. A dry run does it all inside a savepoint and rolls it
back, so the plan it answers is exactly what would happen.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from craton.config import LimitSettings, QuotaSettings
from craton.context import Action, RequestContext
from craton.db.models import Group, Host, Region
from craton.errors import invalid
from craton.inventory import groups as group_ops
from craton.inventory.hosts import create_hosts
from craton.inventory.variables import Sealer, set_variables
from craton.names import RESERVED_VARIABLES

FORMATS = ("ini", "yaml", "json", "directory")
IMPLICIT_GROUPS = ("all", "ungrouped")
MAX_FILES = 10_000
SET_BY_LOADER = frozenset({"inventory_file", "inventory_dir"})
"""Variables Ansible's inventory loader gives every host itself."""
FILE_NAMES = {"ini": "inventory.ini", "yaml": "inventory.yml", "json": "inventory.yml"}


@dataclasses.dataclass
class ParsedInventory:
    """What Ansible read: each group's own variables, parents' children and direct hosts, and
    each host's own variables (the ``all`` group's variables are the region's)."""

    region_variables: dict[str, Any]
    groups: dict[str, dict[str, Any]]
    """name → {"variables": {...}, "children": [names], "hosts": [names]}"""
    hosts: dict[str, dict[str, Any]]
    """name → {"variables": {...}, "groups": [direct group names]}"""
    ignored: dict[str, list[str]] = dataclasses.field(default_factory=dict)
    """group or host name → variables it set that Ansible sets itself (so ignores)"""


@dataclasses.dataclass
class ImportPlan:
    dry_run: bool
    groups_created: list[str] = dataclasses.field(default_factory=list)
    groups_changed: list[str] = dataclasses.field(default_factory=list)
    hosts_created: list[str] = dataclasses.field(default_factory=list)
    hosts_changed: list[str] = dataclasses.field(default_factory=list)
    region_changed: bool = False
    ignored: dict[str, list[str]] = dataclasses.field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "region": {"variables_changed": self.region_changed},
            "groups": {"created": self.groups_created, "changed": self.groups_changed},
            "hosts": {"created": self.hosts_created, "changed": self.hosts_changed},
            "ignored_variables": self.ignored,
        }


# --- parsing -------------------------------------------------------------------------------------

def inventory_files(fmt: str, content: str | None, files: Mapping[str, str] | None
                    ) -> dict[str, str]:
    """The files to write for a request: relative path → text; 422 naming the field when the
    request does not fit its format."""
    if fmt not in FORMATS:
        raise invalid({"format": "must be one of " + ", ".join(FORMATS)})
    if fmt == "directory":
        if not isinstance(files, Mapping) or not files:
            raise invalid({"files": "must map relative paths to file text"})
        if content is not None:
            raise invalid({"content": "a directory inventory comes as files"})
        if len(files) > MAX_FILES:
            raise invalid({"files": f"holds {len(files):,} files; at most {MAX_FILES:,}"})
        for path, text in files.items():
            problem = _relative_path_problem(path)
            if problem is None and not isinstance(text, str):
                problem = "must be the file's text"
            if problem is not None:
                raise invalid({f"files.{path}": problem})
        return dict(files)
    if not isinstance(content, str):
        raise invalid({"content": f"must be the {fmt} inventory's text"})
    if files is not None:
        raise invalid({"files": f"only a directory inventory comes as files, not {fmt}"})
    if fmt == "json":
        return {FILE_NAMES[fmt]: _script_json_as_yaml(content)}
    return {FILE_NAMES[fmt]: content}


def _relative_path_problem(path: object) -> str | None:
    if not isinstance(path, str) or not path:
        return "must be a relative path"
    parts = PurePosixPath(path).parts
    if path.startswith("/") or "\\" in path or any(
            part in ("", ".", "..") or any(ord(c) < 32 for c in part) for part in parts):
        return "must be a relative path without '..', '\\' or control characters"
    if len(parts) > 8 or any(len(part.encode()) > 255 for part in parts):
        return "must be at most 8 levels of names of at most 255 bytes"
    return None


def _script_json_as_yaml(content: str) -> str:
    """Dynamic-inventory JSON (``{"group": {"hosts", "vars", "children"}, "_meta":
    {"hostvars"}}``, or a group as a bare list of hosts) in the YAML inventory format, as JSON
    (which is YAML). Ansible's script plugin reads the same structure."""
    try:
        data = json.loads(content)
    except (ValueError, RecursionError):
        raise invalid({"content": "is not valid JSON"}) from None
    if not isinstance(data, dict):
        raise invalid({"content": "must be a JSON object of groups"})
    hostvars = (data.get("_meta") or {}).get("hostvars") or {}
    if not isinstance(hostvars, dict):
        raise invalid({"content": "_meta.hostvars must be an object"})
    groups: dict[str, Any] = {}
    for name, body in data.items():
        if name == "_meta":
            continue
        if isinstance(body, list):
            body = {"hosts": body}
        if not isinstance(body, dict):
            raise invalid({f"content.{name}": "must be a list of hosts or an object"})
        group: dict[str, Any] = {}
        for key in ("hosts", "children"):
            if body.get(key):
                if not isinstance(body[key], list):
                    raise invalid({f"content.{name}.{key}": "must be a list of names"})
                group[key] = {member: None for member in body[key]}
        if body.get("vars"):
            group["vars"] = body["vars"]
        groups[name] = group
    top = groups.pop("all", {})
    top["hosts"] = {**(top.get("hosts") or {}),
                    **{host: variables or None for host, variables in hostvars.items()}}
    top["children"] = {**{name: None for name in top.get("children") or {}}, **groups}
    return json.dumps({"all": top})


def parse_inventory(files: Mapping[str, str]) -> ParsedInventory:
    """Read ``files`` (an inventory's relative paths → text) with Ansible's own loader, in a
    private temporary directory; 422 naming ``content`` with Ansible's message when it cannot
    be read."""
    from ansible.errors import AnsibleError
    from ansible.parsing.dataloader import DataLoader

    with tempfile.TemporaryDirectory(prefix="craton-import-") as scratch:
        root = Path(scratch, "inventory")
        root.mkdir(mode=0o700)
        for relative, text in files.items():
            path = root / relative
            try:
                path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
                path.write_text(text, encoding="utf-8", errors="strict")
            except (OSError, UnicodeError):
                raise invalid({f"files.{relative}": "cannot be written beside the other "
                                                    "files (a file and a directory of one "
                                                    "name?)"}) from None
            os.chmod(path, 0o600)
        loader = DataLoader()
        try:
            inventory = _safe_inventory_manager_class()(loader=loader, sources=[str(root)])
            return _read(inventory, loader, str(root))
        except AnsibleError as error:
            message = str(error.message).replace(str(root) + "/", "")
            raise invalid({"content": f"Ansible cannot read it: {message}"}) from None


def _safe_inventory_manager_class() -> type:
    from ansible.errors import AnsibleError
    from ansible.inventory.manager import InventoryManager
    from ansible.plugins.loader import inventory_loader

    class SafeInventoryManager(InventoryManager):
        """Ansible's InventoryManager with only the ini and yaml plugins, whatever Ansible's
        configuration enables, and any parse failure an error rather than a warning."""

        def _fetch_inventory_plugins(self) -> list[Any]:
            return [inventory_loader.get(name) for name in ("ini", "yaml")]

        def parse_source(self, source: str, cache: bool = False) -> bool:
            if not super().parse_source(source, cache):
                raise AnsibleError(f"{source} is neither an INI nor a YAML inventory")
            return True

    return SafeInventoryManager


def _read(inventory: Any, loader: Any, source: str) -> ParsedInventory:
    from ansible.vars.plugins import get_vars_from_inventory_sources

    ignored: dict[str, list[str]] = {}

    def own_vars(entity: Any) -> dict[str, Any]:
        files = get_vars_from_inventory_sources(loader, [source], [entity], "all")
        variables = {**_plain(entity.vars, entity.name), **_plain(files, entity.name)}
        dropped = sorted(key for key in variables
                         if key in RESERVED_VARIABLES and key not in SET_BY_LOADER)
        if dropped:
            ignored[entity.name] = dropped
        return {key: value for key, value in variables.items()
                if key not in RESERVED_VARIABLES}

    region_variables = own_vars(inventory.groups["all"])
    groups: dict[str, dict[str, Any]] = {}
    for name, group in sorted(inventory.groups.items()):
        if name in IMPLICIT_GROUPS:
            continue
        variables = own_vars(group)
        if group.priority != 1:
            variables["ansible_group_priority"] = group.priority
        groups[name] = {
            "variables": variables,
            "children": sorted(child.name for child in group.child_groups),
            "hosts": sorted(host.name for host in group.hosts),
        }
    if inventory.groups["all"].priority != 1:
        # Set on ``all`` in the inventory source, Ansible takes it as that group's priority,
        # which orders nothing (``all`` is alone at its depth) and is no host's variable. A
        # region's variables are ``all``'s group_vars, where it would be one: so it is left
        # out, and said (one in group_vars/all is an ordinary variable, kept above).
        ignored.setdefault("all", []).append("ansible_group_priority")
    direct: dict[str, list[str]] = {}
    for name, body in groups.items():
        for host in body["hosts"]:
            direct.setdefault(host, []).append(name)
    hosts = {name: {"variables": own_vars(host), "groups": sorted(direct.get(name, []))}
             for name, host in sorted(inventory.hosts.items())}
    return ParsedInventory(region_variables, groups, hosts, ignored)


def _plain(value: Any, where: str) -> Any:
    """Ansible's (tagged) values as plain JSON values; 422 for what JSON cannot hold (a vault
    value: Craton keeps secrets as secrets)."""
    from ansible.parsing.vault import EncryptedString

    if isinstance(value, EncryptedString):
        raise invalid({"content": f"{where} holds a vault-encrypted value; store it as a "
                                  "Craton secret instead"})
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, str):
        return str(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, dt.date | dt.datetime | dt.time):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(key): _plain(item, where) for key, item in value.items()}
    if isinstance(value, list | tuple | set):
        return [_plain(item, where) for item in value]
    raise invalid({"content": f"{where} holds a {type(value).__name__}, which JSON cannot "
                              "hold"})


# --- loading -------------------------------------------------------------------------------------

def import_inventory(session: Session, ctx: RequestContext, region: Region,
                     parsed: ParsedInventory, *, dry_run: bool, limits: LimitSettings,
                     quotas: QuotaSettings, sealer: Sealer) -> ImportPlan:
    """Create or merge ``parsed`` into ``region`` in the caller's transaction (inside a
    savepoint rolled back when ``dry_run``); returns what was (or would be) created and
    changed. Every check of the API applies; the first refusal ends it, changing nothing."""
    ctx.require(Action.WRITE)
    plan = ImportPlan(dry_run=dry_run, ignored=parsed.ignored)
    savepoint = session.begin_nested()
    try:
        _load(session, ctx, region, parsed, plan, limits, quotas, sealer)
    except BaseException:
        savepoint.rollback()
        raise
    if dry_run:
        savepoint.rollback()
        session.expire_all()
    else:
        savepoint.commit()
    return plan


def _load(session: Session, ctx: RequestContext, region: Region, parsed: ParsedInventory,
          plan: ImportPlan, limits: LimitSettings, quotas: QuotaSettings,
          sealer: Sealer) -> None:
    plan.region_changed = set_variables(region, parsed.region_variables, limits, sealer)
    session.flush()
    existing_groups = {group.name: group for group in session.scalars(
        select(Group).where(Group.region_id == region.id))}
    for name, body in parsed.groups.items():
        group = existing_groups.get(name)
        if group is None:
            existing_groups[name] = group_ops.create_group(
                session, ctx, region, {"name": name, "variables": body["variables"]},
                limits=limits, quotas=quotas, sealer=sealer)
            plan.groups_created.append(name)
        elif set_variables(group, body["variables"], limits, sealer):
            plan.groups_changed.append(name)
    session.flush()
    for name, body in parsed.groups.items():
        if body["children"]:
            group = existing_groups[name]
            added = group_ops.add_children(session, ctx, group, body["children"])
            if added and name not in plan.groups_created and name not in plan.groups_changed:
                plan.groups_changed.append(name)

    existing_hosts = {host.name: host for host in session.scalars(
        select(Host).where(Host.region_id == region.id, Host.name.in_(list(parsed.hosts))))}
    new = [{"name": name, "variables": body["variables"], "groups": body["groups"]}
           for name, body in parsed.hosts.items() if name not in existing_hosts]
    if new:
        create_hosts(session, ctx, region, new, numbered=True, limits=limits, quotas=quotas,
                     sealer=sealer)
        plan.hosts_created = [item["name"] for item in new]
    for name, host in existing_hosts.items():
        body = parsed.hosts[name]
        changed = set_variables(host, body["variables"], limits, sealer)
        for group_name in body["groups"]:
            group = existing_groups[group_name]
            changed = bool(group_ops.add_hosts(session, ctx, group, [host.id])) or changed
        if changed:
            plan.hosts_changed.append(name)
    session.flush()
