"""A region's shared inventory — its variables, groups and references — read in a handful of
queries and with references fetched, ready for resolution and bundles."""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from craton.context import Action, RequestContext
from craton.db.models import (
    Group,
    GroupChild,
    GroupDependency,
    GroupVariable,
    Host,
    HostGroup,
    HostVariable,
    Reference,
    Region,
    RegionVariable,
    Secret,
    SecretKind,
)
from craton.db.scope import get_scoped
from craton.errors import CratonError, InvalidInput
from craton.inventory.resolve import (
    GroupGraph,
    GroupNode,
    HostFacts,
    ReferenceVars,
    Resolved,
    Source,
    host_layers,
    resolve_with_provenance,
)
from craton.inventory.variables import Sealer, parse_variables_file, unsealed, unsealed_all
from craton.sources.fetch import Fetcher


@dataclasses.dataclass(frozen=True)
class FetchedReference:
    id: int
    version: int
    group: str
    name: str
    url: str
    ref: str | None
    path: str | None
    pin: str
    variables: dict[str, str]

    def manifest_entry(self) -> dict[str, Any]:
        kind, _, value = self.pin.partition(":")
        return {"id": self.id, "group": self.group, "name": self.name, "url": self.url,
                "ref": self.ref, "path": self.path, kind: value}


@dataclasses.dataclass
class RegionHead:
    """What a region's bundles are known by, read without its groups or hosts: the region
    (with its inventory version) and its references as fetched."""

    id: int
    name: str
    tenant_id: int
    inventory_version: int
    references: list[FetchedReference]


@dataclasses.dataclass
class RegionSnapshot:
    id: int
    name: str
    tenant_id: int
    inventory_version: int
    variables: dict[str, str]
    graph: GroupGraph
    references: list[FetchedReference]

    @property
    def region_source(self) -> Source:
        return Source("region", self.id, self.name)


def load_head(session: Session, ctx: RequestContext, region_id: int,
              fetcher: Fetcher | None) -> RegionHead:
    """Read a region and fetch its references unless ``fetcher`` is None (then they take part
    with no variables). References are read as the region's tenant may read them (its file
    roots), whoever asks."""
    region = get_scoped(session, ctx, Region, region_id)
    scoped = fetcher.for_tenant(region.tenant_id) if fetcher is not None else None
    return RegionHead(id=region.id, name=region.name, tenant_id=region.tenant_id,
                      inventory_version=region.inventory_version,
                      references=_fetch_references(session, region.id, scoped))


def load_snapshot(session: Session, ctx: RequestContext, region_id: int,
                  fetcher: Fetcher | None, sealer: Sealer | None = None) -> RegionSnapshot:
    """Read a region's shared inventory (see :func:`load_head` for its references;
    :func:`complete_snapshot` for ``sealer``)."""
    return complete_snapshot(session, load_head(session, ctx, region_id, fetcher), sealer)


def complete_snapshot(session: Session, head: RegionHead,
                      sealer: Sealer | None = None) -> RegionSnapshot:
    """The rest of the region's shared inventory: its variables and its groups. Sensitive
    variables are unsealed with ``sealer`` when given, "<hidden>" otherwise."""
    rows = session.execute(
        select(RegionVariable.key, RegionVariable.value_json, RegionVariable.sealed)
        .where(RegionVariable.region_id == head.id)).all()
    region_vars = dict(zip((key for key, _, _ in rows),
                           unsealed_all([(value, sealed) for _, value, sealed in rows], sealer),
                           strict=True))
    groups = session.execute(
        select(Group.id, Group.name).where(Group.region_id == head.id).order_by(Group.id)).all()
    in_region = select(Group.id).where(Group.region_id == head.id)
    group_vars: dict[int, dict[str, str]] = defaultdict(dict)
    rows = session.execute(
        select(GroupVariable.group_id, GroupVariable.key, GroupVariable.value_json,
               GroupVariable.sealed)
        .where(GroupVariable.group_id.in_(in_region))).all()
    for (group_id, key, _, _), value in zip(
            rows, unsealed_all([(value, sealed) for _, _, value, sealed in rows], sealer),
            strict=True):
        group_vars[group_id][key] = value
    parents: dict[int, list[int]] = defaultdict(list)
    for parent_id, child_id in session.execute(
            select(GroupChild.parent_id, GroupChild.child_id)
            .where(GroupChild.child_id.in_(in_region))):
        parents[child_id].append(parent_id)
    depends: dict[int, list[int]] = defaultdict(list)
    for group_id, other in session.execute(
            select(GroupDependency.group_id, GroupDependency.depends_on_id)
            .where(GroupDependency.group_id.in_(in_region))):
        depends[group_id].append(other)
    by_group: dict[str, list[ReferenceVars]] = defaultdict(list)
    for reference in head.references:
        by_group[reference.group].append(
            ReferenceVars(reference.id, reference.name, reference.variables))
    graph = GroupGraph(
        GroupNode(id=group_id, name=name, variables=group_vars.get(group_id, {}),
                  parents=tuple(sorted(parents.get(group_id, ()))),
                  depends_on=tuple(sorted(depends.get(group_id, ()))),
                  references=tuple(by_group.get(name, ())))
        for group_id, name in groups
    )
    return RegionSnapshot(
        id=head.id, name=head.name, tenant_id=head.tenant_id,
        inventory_version=head.inventory_version, variables=region_vars, graph=graph,
        references=head.references,
    )


def _fetch_references(session: Session, region_id: int,
                      fetcher: Fetcher | None) -> list[FetchedReference]:
    rows = session.execute(
        select(Reference, Group.name).join(Group, Group.id == Reference.group_id)
        .where(Group.region_id == region_id).order_by(Reference.id)).all()
    fetched: list[FetchedReference] = []
    for row, group in rows:
        what = f"reference {row.name!r} of group {group!r}"
        if fetcher is None:
            pin, variables = "unfetched:", {}
        else:
            try:
                result = fetcher.fetch_recent(row.url, row.ref, row.path)
                variables = parse_variables_file(result.content, fetcher.limits)
            except CratonError as error:
                raise type(error)(f"{what}: {error.message}",
                                  fields={f"references.{row.id}": error.message}) from None
            except ValueError as error:
                raise InvalidInput(f"{what}: {error}",
                                   fields={f"references.{row.id}": str(error)}) from None
            pin = result.pin
        fetched.append(FetchedReference(
            id=row.id, version=row.version, group=group, name=row.name, url=row.url,
            ref=row.ref, path=row.path, pin=pin, variables=variables))
    return fetched


def resolve_host_variables(session: Session, ctx: RequestContext, host: Host,
                           fetcher: Fetcher | None, *, full: bool = False,
                           sealer: Sealer | None = None) -> Resolved:
    """The variables Ansible will see for ``host`` in a bundle built for ``ctx``, each with the
    object that set it (and, with ``full``, the values it overrode); sensitive ones unsealed
    with ``sealer`` when given, "<hidden>" otherwise."""
    snapshot = load_snapshot(session, ctx, host.region_id, fetcher, sealer)
    own = {key: unsealed(value, sealed, sealer) for key, value, sealed in session.execute(
        select(HostVariable.key, HostVariable.value_json, HostVariable.sealed)
        .where(HostVariable.host_id == host.id))}
    direct = frozenset(session.scalars(select(HostGroup.group_id)
                                       .where(HostGroup.host_id == host.id)))
    key = None
    if ctx.can(Action.REVEAL_SECRETS):
        key = session.execute(
            select(Secret.id, Secret.name).where(Secret.host_id == host.id,
                                                 Secret.kind == SecretKind.SSH_PRIVATE_KEY)
            .order_by(Secret.name).limit(1)).first()
    facts = HostFacts(
        id=host.id, name=host.name, variables=own, ip_address=host.ip_address, fqdn=host.fqdn,
        ssh_port=host.ssh_port, ssh_user=host.ssh_user,
        key_file=(key.id, key.name, key_file_path(host.name, key.name)) if key else None,
    )
    layers = host_layers((snapshot.region_source, snapshot.variables), snapshot.graph, direct,
                         facts)
    return resolve_with_provenance(layers, full=full)


def key_file_path(host: str, secret: str) -> str:
    """Where Ansible finds a host's key in a bundle, relative to the inventory it read."""
    return f"{{{{ inventory_dir }}}}/../secrets/{host}/{secret}"
