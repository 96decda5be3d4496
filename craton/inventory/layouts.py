"""The two layouts of an archive bundle: ``ansible`` (one inventory for the selection) and
``hosts`` (one ansible-runner private data directory per host) — see ``craton.inventory.bundle``."""

from __future__ import annotations

import dataclasses
import json
import re
from collections import defaultdict
from collections.abc import Iterator
from json.encoder import encode_basestring
from typing import TYPE_CHECKING

from craton.inventory.archive import Entry
from craton.inventory.resolve import PRIORITY, GroupGraph, fields_derived_variables
from craton.inventory.snapshot import RegionSnapshot, key_file_path

if TYPE_CHECKING:
    from craton.inventory.bundle import HostRecord, PreparedBundle, SecretRecord


def vars_file(variables: dict[str, str]) -> bytes:
    """A JSON object, one key per line in sorted order, values as stored (canonical JSON).

    Ansible reads a vars file as JSON first and, only if that fails, as YAML; so a file that
    is valid JSON means exactly what its JSON says — keys escaped as JSON strings, values as
    stored — whatever YAML would make of it."""
    if not variables:
        return b"{}\n"
    lines = ",\n".join(f"  {json_key(key)}: {variables[key]}" for key in sorted(variables))
    return ("{\n" + lines + "\n}\n").encode()


json_key = encode_basestring
"""A key as a JSON string: '"', '\\' and control characters escaped, the rest as it is (the C
encoder's own function: a hundred thousand keys take about 10 ms)."""


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
    yield Entry("inventory/hosts.yml", hosts_yml(graph, bundle.hosts, snapshot, priorities=True,
                                                    whole_tree=True))
    names = {host.id: host.name for host in bundle.hosts}
    for secret, content in bundle.secret_contents():
        yield Entry(f"secrets/{names[secret.host_id]}/{secret.name}", content, 0o600)


def per_host_layout(bundle: PreparedBundle) -> Iterator[Entry]:
    snapshot, graph = bundle.snapshot, bundle.snapshot.graph
    templates: dict[frozenset[int], str] = {}
    shared_lines: dict[frozenset[int], dict[str, str]] = {}
    placeholder = yaml_quoted(_PLACEHOLDER)

    def one_host_yml(host: HostRecord) -> bytes:
        """Hosts in the same groups share one hosts.yml but for their name."""
        template = templates.get(host.groups)
        if template is None:
            stand_in = dataclasses.replace(host, name=_PLACEHOLDER)
            template = templates[host.groups] = hosts_yml(graph, [stand_in], snapshot,
                                                          priorities=False,
                                                          whole_tree=False).decode()
        return template.replace(placeholder, yaml_quoted(host.name)).encode()

    def group_lines(groups: frozenset[int]) -> dict[str, str]:
        """The lines of what the region and the groups give a host (what resolve_fast merges
        below the host's own), formatted once for all the hosts in the same groups."""
        found = shared_lines.get(groups)
        if found is None:
            merged = {**snapshot.variables, **graph.merged_groups(groups)}
            found = shared_lines[groups] = {k: f"  {json_key(k)}: {v}"
                                            for k, v in merged.items()}
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
                lines[k] = f"  {json_key(k)}: {v}"
        yield Entry(f"{base}/inventory/host_vars/{host.name}.json", _vars_file_of_lines(lines))
        yield Entry(f"{base}/inventory/hosts.yml", one_host_yml(host))
        for secret, content in sorted(host_contents, key=lambda pair: pair[0].name):
            yield Entry(f"{base}/secrets/{host.name}/{secret.name}", content, 0o600)


_PLACEHOLDER = "\x00host\x00"


def hosts_yml(graph: GroupGraph, hosts: list[HostRecord], snapshot: RegionSnapshot, *,
              priorities: bool, whole_tree: bool) -> bytes:
    """The YAML inventory of ``hosts``: groups nested as Ansible lists them — only those
    without parents under ``all.children``, every other one under each of its parents — with
    their direct members and, with ``priorities``, their ``ansible_group_priority``.

    With ``whole_tree`` it holds every group of the region, empty ones included, whatever the
    selection (``layout=ansible``: the region's tree as Ansible would read the region);
    without, only the groups the hosts are in, directly or through subgroups (one host's own
    inventory).

    A group's body (priority, subgroups, hosts) is written once, under the parent that first
    reaches it breadth-first from ``all`` (so nesting is as shallow as the tree allows); under
    its other parents the group is named alone, which adds the edge and nothing else."""
    members: dict[int, list[str]] = defaultdict(list)
    ungrouped: list[str] = []
    wanted: set[int] = set(graph.nodes) if whole_tree else set()
    for host in hosts:
        for group_id in host.groups:
            members[group_id].append(host.name)
            if not whole_tree:
                wanted |= graph.ancestors(group_id)
        if not host.groups:
            ungrouped.append(host.name)
    quoted = {node_id: yaml_quoted(graph.nodes[node_id].name) for node_id in wanted}
    children_of: dict[int, list[int]] = defaultdict(list)
    roots: list[int] = []
    for node_id in sorted(wanted, key=lambda node_id: graph.nodes[node_id].name):
        parents = graph.nodes[node_id].parents
        for parent in parents:
            children_of[parent].append(node_id)
        if not parents:
            roots.append(node_id)
    home = _homes(roots, children_of)

    lines = [f"# Craton inventory of region {yaml_quoted(snapshot.name)} ({snapshot.id})",
             "all:"]
    if roots:
        lines.append("  children:")
    # Depth-first without recursion (a long chain of groups must not exhaust the stack): an
    # item is a group whose body to write at an indentation, or lines to add as they are.
    stack: list[tuple[int, int] | list[str]] = [(root, 4) for root in reversed(roots)]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            lines += item
            continue
        node_id, indent = item
        pad = " " * indent
        lines.append(f"{pad}{quoted[node_id]}:")
        node = graph.nodes[node_id]
        if priorities and PRIORITY in node.variables:
            lines += [f"{pad}  vars:", f"{pad}    {yaml_quoted(PRIORITY)}: {node.priority}"]
        later: list[tuple[int, int] | list[str]] = []
        kids = children_of.get(node_id)
        if kids:
            later.append([f"{pad}  children:"])
            later += [(kid, indent + 4) if home[kid] == node_id
                      else [f"{pad}    {quoted[kid]}:"] for kid in kids]
        if members.get(node_id):
            later.append([f"{pad}  hosts:"] + [f"{pad}    {yaml_quoted(name)}:"
                                               for name in sorted(members[node_id])])
        stack.extend(reversed(later))
    if ungrouped:
        lines.append("  hosts:")
        lines += [f"    {yaml_quoted(name)}:" for name in sorted(ungrouped)]
    return ("\n".join(lines) + "\n").encode()


def _homes(roots: list[int], children_of: dict[int, list[int]]) -> dict[int, int]:
    """Each group below a root → the parent whose body holds its own: the first to reach it
    breadth-first (roots and children in name order), a parent on a shortest path."""
    home: dict[int, int] = {}
    level = roots
    seen = set(roots)
    while level:
        following: list[int] = []
        for parent in level:
            for kid in children_of.get(parent, ()):
                if kid not in seen:
                    seen.add(kid)
                    home[kid] = parent
                    following.append(kid)
        level = following
    return home


_YAML_UNPRINTABLE = re.compile("[\x7f-\x9f\u2028\u2029\ud800-\udfff\ufffe\uffff]")


def yaml_quoted(text: str) -> str:
    """``text`` as a YAML double-quoted scalar that every YAML reader reads back as ``text``.

    JSON's quoting is YAML's but for two things: JSON writes a character beyond U+FFFF as a
    pair of ``\\u`` escapes, which YAML reads as two halves of nothing (PyYAML refuses them),
    so such characters stay as they are; and YAML reads NEL, U+2028 and U+2029 as line breaks
    (folded to a space) and refuses DEL, the C1 controls and U+FFFE/FFFF, so those are
    escaped. A lone surrogate (which UTF-8 cannot carry) stays escaped and so fails to load
    rather than be misread; names and keys never hold one."""
    return _YAML_UNPRINTABLE.sub(lambda m: f"\\u{ord(m.group()):04x}",
                                 json.dumps(text, ensure_ascii=False))
