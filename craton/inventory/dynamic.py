"""The ``.json`` form of a bundle: Ansible's dynamic-inventory JSON, for an inventory script."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from craton.inventory.resolve import PRIORITY, resolve_fast

if TYPE_CHECKING:
    from craton.inventory.bundle import PreparedBundle


def stream_json(bundle: PreparedBundle) -> Iterator[bytes]:
    """Ansible's dynamic-inventory JSON: groups with hosts, children and vars, and under
    ``_meta.hostvars`` every host's fully resolved variables — which override whatever group
    vars Ansible merges below them, so a script inventory sees exactly what the API resolves.
    Group vars are there to read; ``ansible_group_priority`` only as the integer Craton orders
    by (one from a reference file stays an ordinary variable, in hostvars)."""
    graph, snapshot = bundle.snapshot.graph, bundle.snapshot
    yield b'{"_meta": {"hostvars": {'
    chunk: list[str] = []
    first = True
    for host, own in bundle.host_variables():
        variables = resolve_fast(snapshot.variables, graph, host.groups, bundle.facts(host, own))
        body = ", ".join(f"{json.dumps(k)}: {variables[k]}" for k in sorted(variables))
        chunk.append(("" if first else ",") + f"\n  {json.dumps(host.name)}: {{{body}}}")
        first = False
        if len(chunk) >= 1000:
            yield "".join(chunk).encode()
            chunk = []
    chunk.append("\n}}")
    yield "".join(chunk).encode()
    members: dict[int, list[str]] = defaultdict(list)
    ungrouped = []
    for host in bundle.hosts:
        for group_id in host.groups:
            members[group_id].append(host.name)
        if not host.groups:
            ungrouped.append(host.name)
    children_of: dict[int, list[str]] = defaultdict(list)
    for node in graph.nodes.values():
        for parent in node.parents:
            children_of[parent].append(node.name)
    top = sorted(node.name for node in graph.nodes.values() if not node.parents)
    groups = {"all": {"children": ["ungrouped", *top], "hosts": sorted(ungrouped),
                      "vars": _decoded(snapshot.variables)}}
    for node in sorted(graph.nodes.values(), key=lambda n: n.name):
        merged: dict[str, str] = {}
        for _, values in node.layers():
            merged.update(values)
        merged.pop(PRIORITY, None)
        if PRIORITY in node.variables:
            merged[PRIORITY] = str(node.priority)
        groups[node.name] = {"children": sorted(children_of.get(node.id, [])),
                             "hosts": sorted(members.get(node.id, [])),
                             "vars": _decoded(merged)}
    for name, group in groups.items():
        yield f',\n{json.dumps(name)}: {json.dumps(group, sort_keys=True)}'.encode()
    yield b"\n}\n"


def _decoded(encoded: dict[str, str]) -> dict[str, Any]:
    return {key: json.loads(value) for key, value in encoded.items()}


