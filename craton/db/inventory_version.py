"""Move a region's ``inventory_version`` on in the same transaction as every write that can
change a bundle of that region, whoever writes: the API's resources, bulk operations and the
job engine's write-backs alike.

It hangs on the session factory rather than on each write function, so a write added later,
or one made by code that never heard of bundles, cannot forget it. Two paths reach the
database through a session and both are watched:

- the unit of work (``before_flush``): new, deleted and changed ORM objects of the inventory
  tables; a changed object counts only when a column or collection that can show in a bundle
  changed (not ``description``, ``updated_at``, ``last_seen_at`` …);
- statements run with ``Session.execute`` (``do_orm_execute``): INSERT, UPDATE and DELETE on
  the same tables, the region found from the statement's parameters or, for UPDATE and DELETE,
  from its WHERE clause read before it runs.

Each region is bumped once per transaction (the first write to it): readers see either the
state before the transaction with the old version or the state after it with the new one.
Writes through a bare Core connection are not seen; nothing writes the inventory that way.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import ColumnElement, Table, event, inspect, select, update
from sqlalchemy.orm import ORMExecuteState, Session, SessionTransaction, sessionmaker

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
)
from craton.db.util import chunked

OWNERS: dict[str, tuple[str, str]] = {
    Region.__tablename__: ("region", "id"),
    RegionVariable.__tablename__: ("region", "region_id"),
    Host.__tablename__: ("region", "region_id"),
    Group.__tablename__: ("region", "region_id"),
    HostVariable.__tablename__: ("host", "host_id"),
    HostGroup.__tablename__: ("host", "host_id"),
    Secret.__tablename__: ("host", "host_id"),
    GroupVariable.__tablename__: ("group", "group_id"),
    GroupChild.__tablename__: ("group", "child_id"),
    GroupDependency.__tablename__: ("group", "group_id"),
    Reference.__tablename__: ("group", "group_id"),
}
"""Each inventory table: what kind of object its rows belong to, and the column naming it."""

UNSEEN = frozenset({"created_at", "updated_at", "version", "description", "last_seen_at",
                    "job_id", "reachable"})
"""Columns no bundle shows: changing only these bumps nothing. ``reachable`` is read by the
``reachable`` filter alone, and every job writes it, so a bundle filtered on it adds the hosts
it selects to its ETag instead (``craton.inventory.bundle``) — a job's reachability write-back
does not make every other bundle of the region stale."""

_BUMPED = "craton.bumped_regions"
_TABLES = {"region": Region.__table__, "host": Host.__table__, "group": Group.__table__}


def watch(factory: sessionmaker[Session]) -> None:
    """Keep regions' inventory versions for every session ``factory`` makes."""
    event.listen(factory, "before_flush", _before_flush)
    event.listen(factory, "do_orm_execute", _do_orm_execute)
    event.listen(factory, "after_transaction_end", _after_transaction_end)


def bump(session: Session, owners: Iterable[tuple[str, int | None]]) -> None:
    """Bump the regions that ``owners`` — (kind, id) pairs, kind one of region, host and
    group — belong to, those not bumped yet in this transaction."""
    by_kind: dict[str, set[int]] = {"region": set(), "host": set(), "group": set()}
    for kind, owner_id in owners:
        if owner_id is not None:
            by_kind[kind].add(owner_id)
    if not any(by_kind.values()):
        return
    connection = session.connection()
    regions = by_kind["region"]
    for kind in ("host", "group"):
        table = _TABLES[kind]
        for chunk in chunked(sorted(by_kind[kind])):
            regions.update(connection.scalars(
                select(table.c.region_id).distinct().where(table.c.id.in_(chunk))))
    done: set[int] = session.info.setdefault(_BUMPED, set())
    fresh = sorted(regions - done)
    if not fresh:
        return
    regions_table = Region.__table__
    for chunk in chunked(fresh):
        connection.execute(update(regions_table).where(regions_table.c.id.in_(chunk)).values(
            inventory_version=regions_table.c.inventory_version + 1))
    done.update(fresh)


def _before_flush(session: Session, _context: Any, _instances: Any) -> None:
    owners: list[tuple[str, int | None]] = []
    changed = [(obj, False) for obj in (*session.new, *session.deleted)]
    changed += [(obj, True) for obj in session.dirty]
    for obj, dirty in changed:
        state = inspect(obj)
        owner = OWNERS.get(getattr(state.mapper.local_table, "name", ""))
        if owner is None:
            continue
        if dirty and not any(attr.key not in UNSEEN and attr.history.has_changes()
                             for attr in state.attrs):
            continue
        kind, column = owner
        owners.append((kind, state.dict.get(column) if column != "id" else state.identity
                       and state.identity[0]))
    bump(session, owners)


def _do_orm_execute(execute: ORMExecuteState) -> None:
    if not (execute.is_insert or execute.is_update or execute.is_delete):
        return
    statement: Any = execute.statement
    table = statement.table
    owner = OWNERS.get(getattr(table, "name", ""))
    if owner is None:
        return
    kind, column = owner
    rows = parameter_rows(execute)
    if execute.is_insert:
        bump(execute.session, [(kind, row.get(column)) for row in rows])
        return
    if execute.is_update and not _writes_a_seen_column(statement, rows):
        return
    if statement.whereclause is not None:
        where, parameters = statement.whereclause, (rows[0] if len(rows) == 1 else None)
    else:  # a bulk UPDATE/DELETE by primary key, one parameter row per row written
        where, parameters = table.c.id.in_([row["id"] for row in rows if "id" in row]), None
    bump(execute.session, [(kind, found) for found in
                           _owners_where(execute.session, table, column, where, parameters)])


def parameter_rows(execute: ORMExecuteState) -> list[Mapping[str, Any]]:
    """The rows a statement writes: its execution parameters, else its own VALUES."""
    parameters = execute.parameters
    if isinstance(parameters, list):
        return parameters
    if parameters:
        return [parameters]
    values = getattr(execute.statement, "_multi_values", None)
    if values:
        return [{_key(k): v for k, v in row.items()} for rows in values for row in rows]
    single = getattr(execute.statement, "_values", None)
    return [{_key(k): v for k, v in single.items()}] if single else []


def _key(column: Any) -> str:
    return column if isinstance(column, str) else getattr(column, "key", str(column))


def _writes_a_seen_column(statement: Any, rows: list[Mapping[str, Any]]) -> bool:
    written = {_key(k) for k in (getattr(statement, "_values", None) or {})}
    for row in rows:
        written.update(k for k in row if k != "id")
    return not written or bool(written - UNSEEN)


def _owners_where(session: Session, table: Table, column: str,
                  where: ColumnElement[bool], parameters: Mapping[str, Any] | None = None
                  ) -> list[int]:
    """The owners of the rows ``where`` selects (before the statement changes them)."""
    stmt = select(table.c[column]).distinct().where(where)
    return list(session.connection().scalars(stmt, dict(parameters or {})))


def _after_transaction_end(session: Session, _transaction: SessionTransaction) -> None:
    session.info.pop(_BUMPED, None)
