"""Resolve: the variables a host ends up with, computed exactly as Ansible computes them.

Ansible merges, lowest first: the ``all`` group (a region's variables), then every group the
host belongs to — directly or through subgroups — ordered by (depth from ``all``,
``ansible_group_priority``, name), then the host's own variables. Top-level keys replace
(Ansible's default ``hash_behaviour``). Within one group, its references' files come first (by
reference name) and the group's own variables override them, because bundles lay them out as
``group_vars/<group>/_references/<name>.json`` before ``group_vars/<group>/vars.json``.

``ansible_group_priority`` set on a group in Craton orders groups (bundles put it in
``hosts.yml``, the only place Ansible honours it) and is not a variable; from a reference file it
is an ordinary variable, as Ansible treats it there.

Values stay in their stored form — canonical JSON text — all the way: merging is by key, so
bundles write exactly what the database holds without parsing it. Callers who show values decode
them at the end.

Some host variables come from Craton's own fields, at host level under the host's explicit
variables: ``ansible_host`` (ip_address, else fqdn), ``ansible_port`` (ssh_port),
``ansible_user`` (ssh_user), and ``ansible_ssh_private_key_file`` pointing at the bundle's copy of
the host's SSH key secret.
"""

from __future__ import annotations

import dataclasses
import graphlib
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from craton.values import canonical_json

PRIORITY = "ansible_group_priority"
DEFAULT_PRIORITY = 1
KEY_FILE_VAR = "ansible_ssh_private_key_file"


@dataclasses.dataclass(frozen=True)
class Source:
    """Which object set a value: a region (the ``all`` group), group, reference, host, host
    field or secret."""

    type: str
    id: int
    name: str
    field: str | None = None

    def as_dict(self) -> dict[str, Any]:
        shown: dict[str, Any] = {"type": self.type, "id": self.id, "name": self.name}
        if self.field is not None:
            shown["field"] = self.field
        return shown


Encoded = Mapping[str, str]
"""Variables as key → canonical JSON text."""
Layer = tuple[Source, Encoded]


@dataclasses.dataclass(frozen=True)
class ReferenceVars:
    """A reference's fetched variables, with what they were fetched at."""

    id: int
    name: str
    variables: Encoded


@dataclasses.dataclass(frozen=True)
class GroupNode:
    id: int
    name: str
    variables: Encoded
    """The group's own variables as stored, ``ansible_group_priority`` included."""
    parents: tuple[int, ...] = ()
    depends_on: tuple[int, ...] = ()
    references: tuple[ReferenceVars, ...] = ()

    @property
    def priority(self) -> int:
        text = self.variables.get(PRIORITY)
        value = json.loads(text) if text is not None else DEFAULT_PRIORITY
        return value if isinstance(value, int) and not isinstance(value, bool) else \
            DEFAULT_PRIORITY

    @property
    def plain_variables(self) -> dict[str, str]:
        """What Ansible sees as the group's variables (priority consumed)."""
        return {k: v for k, v in self.variables.items() if k != PRIORITY}

    def layers(self) -> list[Layer]:
        # Bundles hold them as _references/<name>.json, which Ansible loads in file-name
        # order ("base-extra.json" before "base.json"): the same order here.
        found: list[Layer] = [
            (Source("reference", ref.id, ref.name), ref.variables)
            for ref in sorted(self.references, key=lambda ref: f"{ref.name}.json")
        ]
        found.append((Source("group", self.id, self.name), self.plain_variables))
        return found


class GroupGraph:
    """A region's groups with what Ansible derives from them: depth, ancestors, order."""

    def __init__(self, nodes: Iterable[GroupNode]) -> None:
        self.nodes: dict[int, GroupNode] = {node.id: node for node in nodes}
        self.by_name: dict[str, GroupNode] = {node.name: node for node in self.nodes.values()}
        self.depth: dict[int, int] = {}
        for node_id in self.nodes:
            self._depth(node_id, ())
        # Memos live on the instance, so they go when the graph goes (a cache on the class
        # would keep every graph ever built, and its merged variables, alive).
        self._ancestors: dict[int, frozenset[int]] = {}
        self._chains: dict[frozenset[int], tuple[GroupNode, ...]] = {}
        self._merged: dict[frozenset[int], Encoded] = {}

    def _depth(self, node_id: int, path: tuple[int, ...]) -> int:
        """Longest path from ``all``: a group without parents is at depth 1."""
        if node_id in self.depth:
            return self.depth[node_id]
        if node_id in path:
            raise ValueError(f"group graph has a cycle through group {node_id}")
        parents = self.nodes[node_id].parents
        depth = 1 + max((self._depth(p, (*path, node_id)) for p in parents), default=0)
        self.depth[node_id] = depth
        return depth

    def sort_key(self, node_id: int) -> tuple[int, int, str]:
        node = self.nodes[node_id]
        return (self.depth[node_id], node.priority, node.name)

    def ancestors(self, node_id: int) -> frozenset[int]:
        """The group and every group above it."""
        found = self._ancestors.get(node_id)
        if found is None:
            above = {node_id}
            for parent in self.nodes[node_id].parents:
                above |= self.ancestors(parent)
            found = self._ancestors[node_id] = frozenset(above)
        return found

    def chain(self, direct: frozenset[int]) -> tuple[GroupNode, ...]:
        """Every group a host in ``direct`` belongs to, in Ansible's merge order."""
        found = self._chains.get(direct)
        if found is None:
            members: set[int] = set()
            for group_id in direct:
                members |= self.ancestors(group_id)
            found = self._chains[direct] = tuple(
                self.nodes[g] for g in sorted(members, key=self.sort_key))
        return found

    def merged_groups(self, direct: frozenset[int]) -> Encoded:
        """The variables of the host's groups merged (hosts sharing groups share this)."""
        found = self._merged.get(direct)
        if found is None:
            merged: dict[str, str] = {}
            for node in self.chain(direct):
                for _, values in node.layers():
                    merged.update(values)
            found = self._merged[direct] = merged
        return found

    def dependency_levels(self) -> list[list[str]]:
        """Groups in ``depends_on`` order: each level only depends on earlier levels."""
        sorter = graphlib.TopologicalSorter(
            {node.name: {self.nodes[d].name for d in node.depends_on}
             for node in self.nodes.values()}
        )
        sorter.prepare()
        levels: list[list[str]] = []
        while sorter.is_active():
            ready = sorted(sorter.get_ready())
            levels.append(ready)
            sorter.done(*ready)
        return levels


@dataclasses.dataclass(frozen=True)
class HostFacts:
    """What resolution needs of a host besides its groups."""

    id: int
    name: str
    variables: Encoded
    ip_address: str | None = None
    fqdn: str | None = None
    ssh_port: int | None = None
    ssh_user: str | None = None
    key_file: tuple[int, str, str] | None = None
    """(secret id, secret name, path Ansible should use) of the host's SSH key, if any."""


def host_fields(ip_address: str | None, fqdn: str | None, ssh_port: int | None,
                ssh_user: str | None) -> list[tuple[str, str, Any]]:
    """(variable, field, value) of the variables Craton derives from a host's own fields."""
    found: list[tuple[str, str, Any]] = []
    if ip_address:
        found.append(("ansible_host", "ip_address", ip_address))
    elif fqdn:
        found.append(("ansible_host", "fqdn", fqdn))
    if ssh_port:
        found.append(("ansible_port", "ssh_port", ssh_port))
    if ssh_user:
        found.append(("ansible_user", "ssh_user", ssh_user))
    return found


def field_layer(host: HostFacts) -> list[Layer]:
    """Variables Craton derives from the host's own fields and its SSH key secret; the host's
    explicit variables override every one of them."""
    derived: list[Layer] = [
        (Source("host", host.id, host.name, field), {variable: canonical_json(value)})
        for variable, field, value in host_fields(host.ip_address, host.fqdn, host.ssh_port,
                                                  host.ssh_user)
    ]
    if host.key_file is not None:
        secret_id, secret_name, path = host.key_file
        derived.append((Source("secret", secret_id, secret_name),
                        {KEY_FILE_VAR: canonical_json(path)}))
    return derived


def derived_variables(host: HostFacts) -> dict[str, str]:
    """The field-derived variables the host's own variables do not already set."""
    return fields_derived_variables(host.ip_address, host.fqdn, host.ssh_port, host.ssh_user,
                                    host.key_file[2] if host.key_file else None,
                                    host.variables)


def fields_derived_variables(ip_address: str | None, fqdn: str | None, ssh_port: int | None,
                             ssh_user: str | None, key_path: str | None,
                             own: Encoded) -> dict[str, str]:
    """:func:`derived_variables` from the fields themselves: what bundles call once per host,
    with no HostFacts or provenance to build."""
    derived = {variable: canonical_json(value) for variable, _, value in
               host_fields(ip_address, fqdn, ssh_port, ssh_user) if variable not in own}
    if key_path is not None and KEY_FILE_VAR not in own:
        derived[KEY_FILE_VAR] = canonical_json(key_path)
    return derived


def host_layers(region: Layer, graph: GroupGraph, direct: frozenset[int],
                host: HostFacts) -> list[Layer]:
    layers: list[Layer] = [region]
    for node in graph.chain(direct):
        layers.extend(node.layers())
    layers.extend(field_layer(host))
    layers.append((Source("host", host.id, host.name), host.variables))
    return layers


def resolve_fast(region_vars: Encoded, graph: GroupGraph, direct: frozenset[int],
                 host: HostFacts) -> dict[str, str]:
    """The host's final variables, sharing the group merge between hosts with the same groups."""
    resolved = dict(region_vars)
    resolved.update(graph.merged_groups(direct))
    resolved.update(derived_variables(host))
    resolved.update(host.variables)
    return resolved


@dataclasses.dataclass
class Resolved:
    variables: dict[str, Any]
    provenance: dict[str, dict[str, Any]]


def resolve_with_provenance(layers: Sequence[Layer], *, full: bool = False) -> Resolved:
    """Merge ``layers`` (lowest first) into decoded values, recording for each key the source of
    the winning value and, with ``full``, every value it overrode (lowest first)."""
    variables: dict[str, Any] = {}
    provenance: dict[str, dict[str, Any]] = {}
    for source, values in layers:
        for key, value in values.items():
            entry: dict[str, Any] = {"source": source.as_dict()}
            if full:
                previous = provenance.get(key)
                overridden = list(previous["overridden"]) if previous else []
                if previous:
                    overridden.append({"source": previous["source"], "value": variables[key]})
                entry["overridden"] = overridden
            variables[key] = json.loads(value)
            provenance[key] = entry
    return Resolved(variables=variables, provenance=provenance)
