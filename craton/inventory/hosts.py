"""Hosts: created one at a time or thousands at once, by the same code.

Creation is set-based — one INSERT … RETURNING for the hosts, one executemany each for their
variables and group memberships — so 10,000 hosts cost a handful of statements, all in one
transaction: every host is created, or none is and the caller learns which items were wrong.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Select, insert, or_, select, text
from sqlalchemy.orm import Session, selectinload

from craton.config import LimitSettings, QuotaSettings
from craton.context import Action, RequestContext
from craton.db.models import Group, Host, HostGroup, HostState, HostVariable, Quota, Region
from craton.db.util import (
    CHUNK,
    bump_versions,
    chunked,
    conflict_on_integrity_error,
    flush_or_conflict,
)
from craton.errors import Conflict, InvalidInput, invalid
from craton.inventory.clashes import check_new_names
from craton.inventory.quotas import check_quota
from craton.inventory.variables import Sealer, encode_variables, merge_variables, stored_form
from craton.names import (
    fqdn_problem,
    host_name_problem,
    normalize_ip,
    ssh_user_problem,
)
from craton.values import utcnow

HOST_LOADERS = (selectinload(Host.variable_rows), selectinload(Host.groups))
"""What a host's representation needs, loaded in one query each for a whole page."""

Ref = int | str
"""A group or host named by id or by name."""


@dataclasses.dataclass
class CreatedHost:
    """A host just inserted, with the same attributes as ``Host`` so it serializes alike
    without reading back what we just wrote."""

    id: int
    region_id: int
    name: str
    ip_address: str | None
    fqdn: str | None
    ssh_port: int | None
    ssh_user: str | None
    state: HostState
    variables: dict[str, Any]
    group_names: list[str]
    created_at: dt.datetime
    updated_at: dt.datetime
    version: int = 1
    reachable: bool | None = None
    last_seen_at: dt.datetime | None = None


@dataclasses.dataclass(slots=True)
class ListedHost:
    """A host as a list shows it, read with Core rather than as an ORM object: the attributes
    of ``Host`` its representation uses, so it serializes alike."""

    id: int
    region_id: int
    name: str
    ip_address: str | None
    fqdn: str | None
    ssh_port: int | None
    ssh_user: str | None
    state: HostState
    reachable: bool | None
    last_seen_at: dt.datetime | None
    created_at: dt.datetime
    updated_at: dt.datetime
    version: int
    variables: dict[str, Any] = dataclasses.field(default_factory=dict)
    group_names: list[str] = dataclasses.field(default_factory=list)


LISTED_COLUMNS = (Host.id, Host.region_id, Host.name, Host.ip_address, Host.fqdn, Host.ssh_port,
                  Host.ssh_user, Host.state, Host.reachable, Host.last_seen_at, Host.created_at,
                  Host.updated_at, Host.version)


def listed_hosts(session: Session, stmt: Select[Any]) -> list[ListedHost]:
    """The hosts ``stmt`` (a ``SELECT hosts`` as ``select_hosts`` makes it, paged) selects,
    with their variables (sensitive ones as stored: "<hidden>") and their direct groups'
    names: three statements for a page of up to ``CHUNK`` hosts, whatever their variables.

    A list of 1,000 hosts x 10 variables read as ORM objects spends most of its time making
    11,000 of them; these are plain rows."""
    connection = session.connection()
    listed = [ListedHost(*row) for row in connection.execute(
        stmt.with_only_columns(*LISTED_COLUMNS))]
    by_id = {host.id: host for host in listed}
    for ids in chunked(list(by_id), CHUNK):
        rows = connection.execute(
            select(HostVariable.host_id, HostVariable.key, HostVariable.value_json)
            .where(HostVariable.host_id.in_(ids))
            .order_by(HostVariable.host_id, HostVariable.key)).all()
        # Each value is canonical JSON: parsed as one array, not 10,000 documents.
        values = json.loads("[" + ",".join(row[2] for row in rows) + "]")
        for (host_id, key, _), value in zip(rows, values, strict=True):
            by_id[host_id].variables[key] = value
        for host_id, name in connection.execute(
                select(HostGroup.host_id, Group.name).join(Group, Group.id == HostGroup.group_id)
                .where(HostGroup.host_id.in_(ids)).order_by(HostGroup.host_id, Group.name)):
            by_id[host_id].group_names.append(name)
    return listed


def clean_host_fields(data: Mapping[str, Any], prefix: str = "") -> tuple[dict[str, Any],
                                                                         dict[str, str]]:
    """Validate the scalar fields present in ``data``; returns (clean values, problems)."""
    clean: dict[str, Any] = {}
    problems: dict[str, str] = {}

    def note(field: str, problem: str | None, value: Any) -> None:
        if problem is None:
            clean[field] = value
        else:
            problems[prefix + field] = problem

    if "name" in data:
        note("name", host_name_problem(data["name"]), data["name"])
    if "ip_address" in data:
        value = data["ip_address"]
        if value is None:
            note("ip_address", None, None)
        else:
            try:
                note("ip_address", None, normalize_ip(value))
            except ValueError as error:
                note("ip_address", str(error), None)
    for field, rule in (("fqdn", fqdn_problem), ("ssh_user", ssh_user_problem)):
        if field in data:
            value = data[field]
            note(field, None if value is None else rule(value), value)
    if "ssh_port" in data:
        port = data["ssh_port"]
        ok = port is None or (isinstance(port, int) and not isinstance(port, bool)
                              and 1 <= port <= 65535)
        note("ssh_port", None if ok else "must be a port number between 1 and 65535", port)
    if "state" in data:
        try:
            note("state", None, HostState(data["state"]))
        except ValueError:
            note("state", "must be one of " + ", ".join(s.value for s in HostState), None)
    return clean, problems


def resolve_groups(session: Session, region_id: int, refs_by_field: Mapping[str, Sequence[Ref]]
                   ) -> dict[str, list[tuple[int, str]]]:
    """Resolve group ids/names of one region for several fields in one query.
    Returns field → [(id, name)], or raises 422 naming every field with an unknown group."""
    names = {ref for refs in refs_by_field.values() for ref in refs if isinstance(ref, str)}
    ids = {ref for refs in refs_by_field.values() for ref in refs if isinstance(ref, int)}
    found: list[tuple[int, str]] = []
    if names or ids:
        rows = session.execute(
            select(Group.id, Group.name).where(
                Group.region_id == region_id,
                or_(Group.name.in_(names), Group.id.in_(ids)),
            )
        ).all()
        found = [(row.id, row.name) for row in rows]
    by_name = {name: (gid, name) for gid, name in found}
    by_id = {gid: (gid, name) for gid, name in found}
    resolved: dict[str, list[tuple[int, str]]] = {}
    problems: dict[str, str] = {}
    for field, refs in refs_by_field.items():
        out: list[tuple[int, str]] = []
        for ref in refs:
            hit = by_name.get(ref) if isinstance(ref, str) else by_id.get(ref)
            if hit is None:
                problems[field] = f"no group {ref!r} in region {region_id}"
                break
            if hit not in out:
                out.append(hit)
        resolved[field] = out
    if problems:
        raise invalid(problems)
    return resolved


def create_hosts(session: Session, ctx: RequestContext, region: Region,
                 items: Sequence[Mapping[str, Any]], *, numbered: bool, limits: LimitSettings,
                 quotas: QuotaSettings, sealer: Sealer) -> list[CreatedHost]:
    """Create ``items`` (each: name, optional scalar fields, ``variables``, ``groups``) in
    ``region``, all or nothing — the tenant's host quota counts them all at once.
    ``numbered``: name fields in errors by item index (a bulk request) rather than bare (a
    single host)."""
    ctx.require(Action.WRITE)
    problems: dict[str, str] = {}
    rows: list[dict[str, Any]] = []
    variables: list[tuple[dict[str, Any], dict[str, tuple[str, str]]]] = []
    seen: dict[str, int] = {}
    group_refs: dict[str, Sequence[Ref]] = {}
    now = utcnow()
    for index, item in enumerate(items):
        prefix = f"{index}." if numbered else ""
        clean, item_problems = clean_host_fields(item, prefix)
        problems.update(item_problems)
        name = item.get("name")
        if isinstance(name, str):
            if name in seen:
                problems[prefix + "name"] = f"duplicates item {seen[name]}"
            seen.setdefault(name, index)
        try:
            encoded = encode_variables(item.get("variables") or {}, limits,
                                       prefix + "variables")
        except InvalidInput as error:
            problems.update(error.fields)
            encoded = {}
        variables.append((dict(item.get("variables") or {}), encoded))
        if item.get("groups"):
            group_refs[prefix + "groups"] = item["groups"]
        rows.append({
            "region_id": region.id, "name": name, "ip_address": clean.get("ip_address"),
            "fqdn": clean.get("fqdn"), "ssh_port": clean.get("ssh_port"),
            "ssh_user": clean.get("ssh_user"), "state": clean.get("state", HostState.DEFINED),
            "created_at": now, "updated_at": now, "version": 1,
        })
    what = f" in {len(items)} hosts; nothing was created" if numbered else ""
    if problems:
        raise invalid(problems, what)
    try:
        groups = resolve_groups(session, region.id, group_refs)
    except InvalidInput as error:
        raise invalid(error.fields, what) from None

    taken = _existing_names(session, region.id, list(seen))
    if taken:
        fields = {(f"{seen[name]}.name" if numbered else "name"): "already exists in the region"
                  for name in taken}
        raise Conflict(f"{len(taken)} host name(s) already exist in region {region.id}: "
                       + ", ".join(sorted(taken)[:10]), fields=fields)

    check_new_names(session, region.id, Host,
                    {(f"{index}.name" if numbered else "name"): name
                     for name, index in seen.items()}, what=what)
    check_quota(session, region.tenant_id, Quota.HOSTS, len(rows), quotas)
    with conflict_on_integrity_error("a host with one of these names was created "
                                     "concurrently; nothing was created"):
        ids = _insert_returning_ids(session, rows)
    var_rows = [
        dict(zip(("value_json", "value_digest", "sealed"), stored_form(key, text, sealer),
                 strict=True), host_id=host_id, key=key)
        for host_id, (_, encoded) in zip(ids, variables, strict=True)
        for key, (text, _) in encoded.items()
    ]
    if var_rows:
        session.execute(insert(HostVariable.__table__), var_rows)
    memberships: list[dict[str, int]] = []
    created: list[CreatedHost] = []
    for index, (host_id, row, (plain, _)) in enumerate(zip(ids, rows, variables, strict=True)):
        member_of = groups.get(f"{index}.groups" if numbered else "groups", [])
        memberships.extend({"group_id": gid, "host_id": host_id} for gid, _ in member_of)
        created.append(CreatedHost(
            id=host_id, variables=plain, group_names=sorted(name for _, name in member_of),
            **{k: v for k, v in row.items() if k != "version"},
        ))
    if memberships:
        session.execute(insert(HostGroup.__table__), memberships)
        bump_versions(session, Group, sorted({m["group_id"] for m in memberships}))
    return created


def _existing_names(session: Session, region_id: int, names: list[str]) -> set[str]:
    taken: set[str] = set()
    for chunk in chunked(names):
        taken.update(session.scalars(
            select(Host.name).where(Host.region_id == region_id, Host.name.in_(chunk))))
    return taken


def _insert_returning_ids(session: Session, rows: list[dict[str, Any]]) -> list[int]:
    """Insert ``rows`` into hosts; their new ids, in order.

    SQLite cannot give back an INSERT's RETURNING rows in the order they were sent, so
    SQLAlchemy would send one INSERT per host to keep the order. There the ids are given here
    instead, after the highest hosts ever had (``sqlite_autoincrement``: never one again), and
    the rows go in one statement; the transaction holds SQLite's write lock (a write
    transaction begins IMMEDIATE), and should another writer have taken an id first, the
    unique key refuses the insert (a conflict, nothing written). Elsewhere RETURNING does it
    in batches."""
    table = Host.__table__
    if session.get_bind().dialect.name == "sqlite":
        highest = session.scalar(text("SELECT seq FROM sqlite_sequence WHERE name = :table"),
                                 {"table": table.name}) or 0
        ids = list(range(highest + 1, highest + 1 + len(rows)))
        session.execute(insert(table), [{**row, "id": host_id}
                                        for row, host_id in zip(rows, ids, strict=True)])
        return ids
    stmt = insert(table).returning(table.c.id, sort_by_parameter_order=True)
    ids = []
    for chunk in chunked(rows):
        ids.extend(session.scalars(stmt, list(chunk)))
    return ids


def update_host(session: Session, ctx: RequestContext, host: Host,
                data: Mapping[str, Any], *, limits: LimitSettings, sealer: Sealer) -> Host:
    ctx.require(Action.WRITE)
    clean, problems = clean_host_fields(data)
    if problems:
        raise invalid(problems)
    if "name" in clean and clean["name"] != host.name:
        exists = session.scalar(select(Host.id).where(Host.region_id == host.region_id,
                                                      Host.name == clean["name"]))
        if exists is not None:
            raise Conflict(f"host {clean['name']!r} already exists in region {host.region_id}",
                           fields={"name": "already exists in the region"})
        check_new_names(session, host.region_id, Host, {"name": clean["name"]},
                        renaming=host.id)
    for field, value in clean.items():
        setattr(host, field, value)
    if "variables" in data:
        merge_variables(host, data["variables"], limits, sealer)
    if "groups" in data:
        set_host_groups(session, host, data["groups"])
    flush_or_conflict(session, f"host {host.name!r} already exists in region {host.region_id}",
                      {"name": "already exists in the region"})
    return host


def set_host_groups(session: Session, host: Host, refs: Sequence[Ref]) -> None:
    wanted = resolve_groups(session, host.region_id, {"groups": refs})["groups"]
    wanted_ids = {gid for gid, _ in wanted}
    current_ids = {group.id for group in host.groups}
    if wanted_ids == current_ids:
        return
    changed = sorted(wanted_ids ^ current_ids)
    host.groups = list(session.scalars(
        select(Group).where(Group.id.in_(wanted_ids)).order_by(Group.name)))
    host.updated_at = utcnow()
    session.flush()
    bump_versions(session, Group, changed)


def delete_host(session: Session, ctx: RequestContext, host: Host) -> None:
    ctx.require(Action.WRITE)
    group_ids = [group.id for group in host.groups]
    session.delete(host)
    session.flush()
    bump_versions(session, Group, group_ids)
