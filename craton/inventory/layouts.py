"""The two layouts of an archive bundle: ``ansible`` (one inventory for the selection) and
``hosts`` (one ansible-runner private data directory per host) — see ``craton.inventory.bundle``."""

from __future__ import annotations

import dataclasses
import json
from collections import defaultdict
from collections.abc import Iterator
from typing import TYPE_CHECKING

from craton.inventory.archive import Entry
from craton.inventory.resolve import PRIORITY, GroupGraph, fields_derived_variables
from craton.inventory.snapshot import RegionSnapshot, key_file_path

if TYPE_CHECKING:
    from craton.inventory.bundle import HostRecord, PreparedBundle, SecretRecord


def vars_file(variables: dict[str, str]) -> bytes:
    """A JSON object, one key per line in sorted order, values as stored (canonical JSON).
    Keys are Ansible variable names (letters, digits, '_'), so quoting them needs no escaping."""
    if not variables:
        return b"{}\n"
    lines = ",\n".join(f'  "{key}": {variables[key]}' for key in sorted(variables))
    return ("{\n" + lines + "\n}\n").encode()


def _vars_file_of_lines(lines: dict[str, str]) -> bytes:
    """:func:`vars_file` of variables given as their lines (key → ``  "key": value``)."""
    if not lines:
        return b"{}\n"
    return ("{\n" + ",\n".join([lines[key] for key in sorted(lines)]) + "\n}\n").encode()


def ansible_layout(bundle: PreparedBundle) -> Iterator[Entry]:
    snapshot, graph = bundle.snapshot, bundle.snapshot.graph
    group_entries: list[Entry] = []
    if snapshot.variables:
        group_entries.append(Entry("inventory/group_vars/all.json", vars_file(snapshot.variables)))
    for node in graph.nodes.values():
        if node.references:
            base = f"inventory/group_vars/{node.name}"
            group_entries += [Entry(f"{base}/_references/{ref.name}.json",
                                    vars_file(dict(ref.variables))) for ref in node.references]
            group_entries.append(Entry(f"{base}/vars.json", vars_file(node.plain_variables)))
        elif node.plain_variables:
            group_entries.append(Entry(f"inventory/group_vars/{node.name}.json",
                                       vars_file(node.plain_variables)))
    yield from sorted(group_entries, key=lambda entry: entry.path)

    for host, own in bundle.host_variables():
        key = bundle.key_files.get(host.id)
        variables = {**fields_derived_variables(
            host.ip_address, host.fqdn, host.ssh_port, host.ssh_user,
            key_file_path(host.name, key.name) if key is not None else None, own), **own}
        if variables:
            yield Entry(f"inventory/host_vars/{host.name}.json", vars_file(variables))
    yield Entry("inventory/hosts.yml", hosts_yml(graph, bundle.hosts, snapshot, priorities=True))
    names = {host.id: host.name for host in bundle.hosts}
    for secret, content in bundle.secret_contents():
        yield Entry(f"secrets/{names[secret.host_id]}/{secret.name}", content, 0o600)


def per_host_layout(bundle: PreparedBundle) -> Iterator[Entry]:
    snapshot, graph = bundle.snapshot, bundle.snapshot.graph
    templates: dict[frozenset[int], str] = {}
    shared_lines: dict[frozenset[int], dict[str, str]] = {}
    placeholder = json.dumps(_PLACEHOLDER)

    def one_host_yml(host: HostRecord) -> bytes:
        """Hosts in the same groups share one hosts.yml but for their name."""
        template = templates.get(host.groups)
        if template is None:
            stand_in = dataclasses.replace(host, name=_PLACEHOLDER)
            template = templates[host.groups] = hosts_yml(graph, [stand_in], snapshot,
                                                          priorities=False).decode()
        return template.replace(placeholder, json.dumps(host.name)).encode()

    def group_lines(groups: frozenset[int]) -> dict[str, str]:
        """The lines of what the region and the groups give a host (what resolve_fast merges
        below the host's own), formatted once for all the hosts in the same groups."""
        found = shared_lines.get(groups)
        if found is None:
            merged = {**snapshot.variables, **graph.merged_groups(groups)}
            found = shared_lines[groups] = {k: f'  "{k}": {v}' for k, v in merged.items()}
        return found

    contents: dict[int, list[tuple[SecretRecord, bytes]]] = defaultdict(list)
    for secret, content in bundle.secret_contents():
        contents[secret.host_id].append((secret, content))
    for host, own in bundle.host_variables():
        base = f"hosts/{host.name}"
        key = bundle.key_files.get(host.id)
        host_contents = contents.pop(host.id, [])
        if key is not None:
            yield Entry(f"{base}/env/ssh_key",
                        next(c for s, c in host_contents if s.id == key.id), 0o600)
        derived = fields_derived_variables(
            host.ip_address, host.fqdn, host.ssh_port, host.ssh_user,
            key_file_path(host.name, key.name) if key is not None else None, own)
        lines = dict(group_lines(host.groups))
        for variables in (derived, own):
            for k, v in variables.items():
                lines[k] = f'  "{k}": {v}'
        yield Entry(f"{base}/inventory/host_vars/{host.name}.json", _vars_file_of_lines(lines))
        yield Entry(f"{base}/inventory/hosts.yml", one_host_yml(host))
        for secret, content in sorted(host_contents, key=lambda pair: pair[0].name):
            yield Entry(f"{base}/secrets/{host.name}/{secret.name}", content, 0o600)


_PLACEHOLDER = "\x00host\x00"


def hosts_yml(graph: GroupGraph, hosts: list[HostRecord], snapshot: RegionSnapshot, *,
              priorities: bool) -> bytes:
    """The YAML inventory: every group once under ``all.children`` with its subgroups and
    direct members (names quoted, so "true" or "1.0" stay names), group priorities where set.
    With one host, only the groups that host is in."""
    members: dict[int, list[str]] = defaultdict(list)
    ungrouped: list[str] = []
    wanted: set[int] = set()
    for host in hosts:
        for group_id in host.groups:
            members[group_id].append(host.name)
            wanted |= graph.ancestors(group_id)
        if not host.groups:
            ungrouped.append(host.name)
    if len(hosts) != 1:
        wanted = set(graph.nodes)
    q = json.dumps
    lines = [f"# Craton inventory of region {q(snapshot.name)} ({snapshot.id})", "all:"]
    nodes = sorted((graph.nodes[g] for g in wanted), key=lambda node: node.name)
    children_of: dict[int, list[str]] = defaultdict(list)
    for node in nodes:
        for parent in node.parents:
            if parent in wanted:
                children_of[parent].append(node.name)
    if nodes:
        lines.append("  children:")
    for node in nodes:
        lines.append(f"    {q(node.name)}:")
        if priorities and PRIORITY in node.variables:
            lines += ["      vars:", f"        {q(PRIORITY)}: {node.priority}"]
        if children_of.get(node.id):
            lines.append("      children:")
            lines += [f"        {q(child)}:" for child in sorted(children_of[node.id])]
        if members.get(node.id):
            lines.append("      hosts:")
            lines += [f"        {q(name)}:" for name in sorted(members[node.id])]
    if ungrouped:
        lines.append("  hosts:")
        lines += [f"    {q(name)}:" for name in sorted(ungrouped)]
    return ("\n".join(lines) + "\n").encode()


