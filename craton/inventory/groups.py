"""Groups: their subgroup DAG, their declared run dependencies and their host members.

Both graphs (parent → child and depends_on) must stay acyclic. Every write to a region's graphs
locks the region row first (a no-op on SQLite, whose writers are serialized anyway), loads the
region's edges in one query and refuses, with a 409 that spells the cycle out, any change that
would close one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import delete, insert, or_, select
from sqlalchemy.orm import Session, selectinload

from craton.config import LimitSettings, QuotaSettings
from craton.context import Action, RequestContext
from craton.db.models import Group, GroupChild, GroupDependency, Host, HostGroup, Quota, Region
from craton.db.scope import get_scoped
from craton.db.util import bump_versions, chunked, flush_or_conflict
from craton.errors import Conflict, invalid
from craton.inventory.clashes import check_new_names
from craton.inventory.graph import describe_cycle, find_cycle
from craton.inventory.hosts import Ref, resolve_groups
from craton.inventory.quotas import check_quota
from craton.inventory.variables import Sealer, merge_variables, replace_variables
from craton.names import check, group_name_problem

GROUP_LOADERS = (
    selectinload(Group.variable_rows),
    selectinload(Group.children),
    selectinload(Group.parents),
    selectinload(Group.depends_on),
)
"""What a group's representation needs, one query each for a whole page."""

EdgeTable = type[GroupChild] | type[GroupDependency]
EDGE_COLUMNS = {
    GroupChild: ("parent_id", "child_id", "subgroup"),
    GroupDependency: ("group_id", "depends_on_id", "dependency"),
}


def create_group(session: Session, ctx: RequestContext, region: Region,
                 data: Mapping[str, Any], *, limits: LimitSettings,
                 quotas: QuotaSettings, sealer: Sealer) -> Group:
    ctx.require(Action.WRITE)
    name = data["name"]
    check("name", group_name_problem(name))
    check_quota(session, region.tenant_id, Quota.GROUPS, 1, quotas)
    _lock_region(session, ctx, region.id)
    if session.scalar(select(Group.id).where(Group.region_id == region.id,
                                             Group.name == name)) is not None:
        raise Conflict(f"group {name!r} already exists in region {region.id}",
                       fields={"name": "already exists in the region"})
    check_new_names(session, region.id, Group, {"name": name})
    links = resolve_groups(session, region.id, {
        field: data.get(field) or [] for field in ("children", "parents", "depends_on")
    })
    host_ids = resolve_hosts(session, region.id, data.get("hosts") or [], "hosts")
    group = Group(region_id=region.id, name=name, description=data.get("description"))
    replace_variables(group, data.get("variables") or {}, limits, sealer)
    session.add(group)
    flush_or_conflict(session, f"group {name!r} already exists in region {region.id}",
                      {"name": "already exists in the region"})
    _add_edges(session, region.id, GroupChild,
               [(group.id, child) for child, _ in links["children"]]
               + [(parent, group.id) for parent, _ in links["parents"]],
               "parents" if links["parents"] else "children")
    _add_edges(session, region.id, GroupDependency,
               [(group.id, other) for other, _ in links["depends_on"]], "depends_on")
    if host_ids:
        add_hosts(session, ctx, group, host_ids)
    _reload(session)
    return group


def update_group(session: Session, ctx: RequestContext, group: Group,
                 data: Mapping[str, Any], *, limits: LimitSettings,
                 sealer: Sealer) -> Group:
    ctx.require(Action.WRITE)
    if "name" in data and data["name"] != group.name:
        check("name", group_name_problem(data["name"]))
        if session.scalar(select(Group.id).where(Group.region_id == group.region_id,
                                                 Group.name == data["name"])) is not None:
            raise Conflict(f"group {data['name']!r} already exists in region {group.region_id}",
                           fields={"name": "already exists in the region"})
        check_new_names(session, group.region_id, Group, {"name": data["name"]},
                        renaming=group.id)
        group.name = data["name"]
        # Its name shows in its neighbours' and members' representations: move their ETags.
        bump_versions(session, Group, _neighbours(session, group))
        bump_versions(session, Host, list(session.scalars(
            select(HostGroup.host_id).where(HostGroup.group_id == group.id))))
    if "description" in data:
        group.description = data["description"]
    if "variables" in data:
        merge_variables(group, data["variables"], limits, sealer)
    flush_or_conflict(session, f"group {group.name!r} already exists",
                      {"name": "already exists in the region"})
    for field, table in (("children", GroupChild), ("depends_on", GroupDependency)):
        if field in data:
            _lock_region(session, ctx, group.region_id)
            wanted = resolve_groups(session, group.region_id, {field: data[field]})[field]
            _set_edges(session, group.region_id, table, group, field,
                       [gid for gid, _ in wanted])
    _reload(session)
    return group


def delete_group(session: Session, ctx: RequestContext, group: Group) -> None:
    """Delete a group. Its hosts stay; its subgroups stay too, attached to nothing above."""
    ctx.require(Action.WRITE)
    neighbours = _neighbours(session, group)
    members = list(session.scalars(select(HostGroup.host_id)
                                   .where(HostGroup.group_id == group.id)))
    session.delete(group)
    session.flush()
    bump_versions(session, Group, neighbours)
    bump_versions(session, Host, members)


def _neighbours(session: Session, group: Group) -> list[int]:
    """Groups whose representation names ``group``: its parents, children and dependants."""
    dependants = session.scalars(select(GroupDependency.group_id)
                                 .where(GroupDependency.depends_on_id == group.id))
    return sorted({g.id for g in (*group.children, *group.parents)} | set(dependants))


def resolve_hosts(session: Session, region_id: int, refs: Sequence[Ref], field: str
                  ) -> list[int]:
    """Host ids for ids/names of one region, in one query per 5,000; 422 naming the field and
    the first unknown host otherwise."""
    names = [ref for ref in refs if isinstance(ref, str)]
    ids = [ref for ref in refs if isinstance(ref, int)]
    by_name: dict[str, int] = {}
    known_ids: set[int] = set()
    for chunk in chunked(names):
        by_name.update(session.execute(
            select(Host.name, Host.id).where(Host.region_id == region_id, Host.name.in_(chunk))
        ).all())
    for chunk in chunked(ids):
        known_ids.update(session.scalars(
            select(Host.id).where(Host.region_id == region_id, Host.id.in_(chunk))))
    resolved: list[int] = []
    for ref in refs:
        host_id = by_name.get(ref) if isinstance(ref, str) else (ref if ref in known_ids else None)
        if host_id is None:
            raise invalid({field: f"no host {ref!r} in region {region_id}"})
        resolved.append(host_id)
    return list(dict.fromkeys(resolved))


def add_hosts(session: Session, ctx: RequestContext, group: Group, host_ids: Sequence[int]
              ) -> list[int]:
    """Make hosts direct members; returns the ids that were not members already."""
    ctx.require(Action.WRITE)
    current = set(session.scalars(select(HostGroup.host_id)
                                  .where(HostGroup.group_id == group.id)))
    new = [host_id for host_id in host_ids if host_id not in current]
    for chunk in chunked(new):
        session.execute(insert(HostGroup.__table__),
                        [{"group_id": group.id, "host_id": host_id} for host_id in chunk])
    _members_changed(session, group, new)
    return new


def remove_hosts(session: Session, ctx: RequestContext, group: Group, host_ids: Sequence[int]
                 ) -> list[int]:
    """Drop direct memberships; returns the ids that were members."""
    ctx.require(Action.WRITE)
    removed: list[int] = []
    for chunk in chunked(list(host_ids)):
        members = list(session.scalars(select(HostGroup.host_id).where(
            HostGroup.group_id == group.id, HostGroup.host_id.in_(chunk))))
        if members:
            session.execute(delete(HostGroup).where(HostGroup.group_id == group.id,
                                                    HostGroup.host_id.in_(members)))
            removed.extend(members)
    _members_changed(session, group, removed)
    return removed


def _members_changed(session: Session, group: Group, host_ids: list[int]) -> None:
    """Membership is part of both sides' representation: move the ETags of ``group`` and of
    the hosts that joined or left it."""
    if host_ids:
        bump_versions(session, Host, host_ids)
        bump_versions(session, Group, [group.id])
        _reload(session)


def add_children(session: Session, ctx: RequestContext, group: Group, refs: Sequence[Ref]
                 ) -> list[int]:
    ctx.require(Action.WRITE)
    _lock_region(session, ctx, group.region_id)
    wanted = resolve_groups(session, group.region_id, {"children": refs})["children"]
    current = {child.id for child in group.children}
    new = [gid for gid, _ in wanted if gid not in current]
    _add_edges(session, group.region_id, GroupChild, [(group.id, gid) for gid in new],
               "children")
    _reload(session)
    return new


def remove_children(session: Session, ctx: RequestContext, group: Group, refs: Sequence[Ref]
                    ) -> list[int]:
    ctx.require(Action.WRITE)
    wanted = resolve_groups(session, group.region_id, {"children": refs})["children"]
    current = {child.id for child in group.children}
    gone = [gid for gid, _ in wanted if gid in current]
    if gone:
        session.execute(delete(GroupChild).where(GroupChild.parent_id == group.id,
                                                 GroupChild.child_id.in_(gone)))
        bump_versions(session, Group, [group.id, *gone])
        _reload(session)
    return gone


def _reload(session: Session) -> None:
    """Link rows were written set-based, behind the ORM's back: flush, then let every loaded
    object (the group, its neighbours, member hosts) reload its links on next access."""
    session.flush()
    session.expire_all()


def _lock_region(session: Session, ctx: RequestContext, region_id: int) -> None:
    """Serialize graph changes within a region (SELECT … FOR UPDATE on MariaDB)."""
    get_scoped(session, ctx, Region, region_id, for_update=True)


def _region_edges(session: Session, region_id: int, table: EdgeTable) -> list[tuple[int, int]]:
    source, target, _ = EDGE_COLUMNS[table]
    rows = session.execute(
        select(getattr(table, source), getattr(table, target))
        .join(Group, Group.id == getattr(table, source))
        .where(Group.region_id == region_id)
    )
    return [(a, b) for a, b in rows]


def _add_edges(session: Session, region_id: int, table: EdgeTable,
               new: Sequence[tuple[int, int]], field: str,
               removed: Sequence[tuple[int, int]] = ()) -> None:
    if not new and not removed:
        return
    source, target, what = EDGE_COLUMNS[table]
    edges = set(_region_edges(session, region_id, table)) - set(removed)
    cycle = find_cycle([*edges, *new])
    if cycle is not None:
        names = dict(session.execute(
            select(Group.id, Group.name).where(Group.id.in_(set(cycle)))).all())
        path = describe_cycle(cycle, names)
        raise Conflict(f"this {what} would close a cycle: {path}", fields={field: f"cycle: {path}"})
    if removed:
        session.execute(delete(table).where(or_(*(
            (getattr(table, source) == a) & (getattr(table, target) == b) for a, b in removed))))
    fresh = [edge for edge in new if edge not in edges]
    if fresh:
        session.execute(insert(table.__table__), [{source: a, target: b} for a, b in fresh])
    touched = {node for edge in (*fresh, *removed) for node in edge}
    bump_versions(session, Group, sorted(touched))


def _set_edges(session: Session, region_id: int, table: EdgeTable, group: Group, field: str,
               wanted: Sequence[int]) -> None:
    """Make ``group``'s outgoing edges in ``table`` exactly ``wanted``."""
    source, target, _ = EDGE_COLUMNS[table]
    current = set(session.scalars(select(getattr(table, target))
                                  .where(getattr(table, source) == group.id)))
    wanted_set = set(wanted)
    _add_edges(session, region_id, table,
               [(group.id, gid) for gid in wanted if gid not in current], field,
               removed=[(group.id, gid) for gid in sorted(current - wanted_set)])
