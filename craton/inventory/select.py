"""Select hosts: one filter, used by the hosts list, inventory bundles and jobs alike.

Every filter becomes SQL — a recursive CTE for "this group and its subgroups", indexed
``(key, value_digest)`` lookups for variables — so selecting N hosts costs the same few queries
whatever N is.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, select
from sqlalchemy.orm import Session

from craton.context import RequestContext
from craton.db.models import Group, GroupChild, Host, HostGroup, HostState, HostVariable, Region
from craton.db.scope import scoped_select
from craton.errors import invalid
from craton.inventory.variables import value_candidates
from craton.names import (
    group_name_problem,
    host_name_problem,
    normalize_ip,
    variable_key_form_problem,
)
from craton.values import value_digest

GLOB_CHARS = frozenset("*?")
LIKE_ESCAPE = "!"


@dataclasses.dataclass(frozen=True)
class HostFilter:
    """Which hosts: every field given must match (AND)."""

    region_id: int | None = None
    ids: tuple[int, ...] = ()
    name: str | None = None
    """Exact name, or a glob with ``*`` and ``?``."""
    group: str | None = None
    """Members of this group or of any group below it."""
    variables: tuple[tuple[str, str | None], ...] = ()
    """(key, value): the host's own variable ``key`` equals ``value``; value None: key is set."""
    states: tuple[HostState, ...] = ()
    ip_address: str | None = None
    reachable: bool | None = None

    def as_query(self) -> dict[str, Any]:
        """The filter as query parameters (for ``next`` links and job records)."""
        query: dict[str, Any] = {}
        if self.region_id is not None:
            query["region_id"] = self.region_id
        if self.ids:
            query["id"] = list(self.ids)
        if self.name is not None:
            query["name"] = self.name
        if self.group is not None:
            query["group"] = self.group
        if self.variables:
            query["var"] = [key if value is None else f"{key}:{value}"
                            for key, value in self.variables]
        if self.states:
            query["state"] = [state.value for state in self.states]
        if self.ip_address is not None:
            query["ip_address"] = self.ip_address
        if self.reachable is not None:
            query["reachable"] = self.reachable
        return query


def parse_var_filter(text: str) -> tuple[str, str | None]:
    """``key:value`` → (key, value); ``key`` alone → (key, None)."""
    key, sep, value = text.partition(":")
    return key, (value if sep else None)


MAX_FILTER_VALUE = 4096


def build_filter(args: Mapping[str, Any], region_id: int | None = None) -> HostFilter:
    """A HostFilter from query-style arguments (``region_id``, ``id``, ``name``, ``group``,
    ``var``, ``state``, ``ip_address``), validated: 422 naming the argument otherwise.

    Names are checked against what a stored name can be, so no filter relies on how a
    database compares odd strings (MariaDB ignores trailing spaces in ``=``)."""
    name, group = args.get("name"), args.get("group")
    if name is not None:
        problem = host_name_problem(name) if not GLOB_CHARS & set(name) else (
            None if host_name_problem(name.replace("*", "x").replace("?", "x")) is None else
            "a glob may contain only the characters of host names, '*' and '?'")
        if problem is not None:
            raise invalid({"name": problem})
    if group is not None:
        problem = group_name_problem(group)
        if problem is not None:
            raise invalid({"group": problem})
    variables = tuple(parse_var_filter(text) for text in args.get("var") or ())
    for key, value in variables:
        problem = variable_key_form_problem(key)
        if problem is not None:
            raise invalid({"var": f"{key!r} {problem}"})
        if value is not None and len(value) > MAX_FILTER_VALUE:
            raise invalid({"var": f"the value for {key!r} is longer than {MAX_FILTER_VALUE}"})
    ip_address = args.get("ip_address")
    if ip_address is not None:
        try:
            ip_address = normalize_ip(ip_address)
        except ValueError as error:
            raise invalid({"ip_address": str(error)}) from None
    return HostFilter(
        region_id=region_id if region_id is not None else args.get("region_id"),
        ids=tuple(args.get("id") or ()),
        name=args.get("name"),
        group=args.get("group"),
        variables=variables,
        states=tuple(HostState(state) for state in args.get("state") or ()),
        ip_address=ip_address,
        reachable=args.get("reachable"),
    )


def check_group_exists(session: Session, ctx: RequestContext, flt: HostFilter) -> None:
    """Within a region the caller can see, filtering on a group that does not exist is a
    mistake worth naming (a typo would otherwise select nothing, silently). In a region it
    cannot see, nothing is said: the selection is empty either way."""
    if flt.group is None or flt.region_id is None:
        return
    found = session.scalar(scoped_select(ctx, Group).where(Group.region_id == flt.region_id,
                                                           Group.name == flt.group))
    if found is None and session.scalar(
            scoped_select(ctx, Region).where(Region.id == flt.region_id)) is not None:
        raise invalid({"group": f"no group {flt.group!r} in region {flt.region_id}"})


def glob_to_like(pattern: str) -> str:
    escaped = "".join(LIKE_ESCAPE + ch if ch in "%_" + LIKE_ESCAPE else ch for ch in pattern)
    return escaped.replace("*", "%").replace("?", "_")


def subtree(roots: Select[Any]) -> Select[Any]:
    """Ids of the groups selected by ``roots`` and of every group below them, as a recursive
    CTE (UNION, so diamonds in the DAG are visited once)."""
    tree = roots.cte("group_tree", recursive=True)
    tree = tree.union(
        select(GroupChild.child_id.label("id")).join(tree, GroupChild.parent_id == tree.c.id)
    )
    return select(tree.c.id)


def group_and_descendants(group_name: str, region_id: int | None) -> Select[Any]:
    """Ids of the groups named ``group_name`` (in ``region_id`` if given) and their subtrees."""
    roots = select(Group.id.label("id")).where(Group.name == group_name)
    if region_id is not None:
        roots = roots.where(Group.region_id == region_id)
    return subtree(roots)


def host_conditions(flt: HostFilter) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if flt.region_id is not None:
        conditions.append(Host.region_id == flt.region_id)
    if flt.ids:
        conditions.append(Host.id.in_(flt.ids))
    if flt.name is not None:
        if GLOB_CHARS & set(flt.name):
            conditions.append(Host.name.like(glob_to_like(flt.name), escape=LIKE_ESCAPE))
        else:
            conditions.append(Host.name == flt.name)
    if flt.group is not None:
        members = select(HostGroup.host_id).where(
            HostGroup.group_id.in_(group_and_descendants(flt.group, flt.region_id))
        )
        conditions.append(Host.id.in_(members))
    for key, value in flt.variables:
        match = HostVariable.key == key
        if value is not None:
            forms = value_candidates(value)
            match = and_(
                match,
                HostVariable.value_digest.in_([value_digest(form) for form in forms]),
                HostVariable.value_json.in_(forms),
            )
        conditions.append(Host.id.in_(select(HostVariable.host_id).where(match)))
    if flt.states:
        conditions.append(Host.state.in_(flt.states))
    if flt.ip_address is not None:
        conditions.append(Host.ip_address == flt.ip_address)
    if flt.reachable is not None:
        conditions.append(Host.reachable.is_(flt.reachable))
    return conditions


def select_hosts(ctx: RequestContext, flt: HostFilter) -> Select[tuple[Host]]:
    """``SELECT hosts`` matching ``flt`` among those ``ctx`` may see, in id order."""
    return scoped_select(ctx, Host).where(*host_conditions(flt)).order_by(Host.id)
