"""Change records: every write to the inventory, its secrets, API keys and jobs leaves one per
object it touched, written in the write's own transaction — who (``Actor``), when, in which
request, what (type, id, name), and the before and after of what changed.

Like ``craton.db.inventory_version`` it hangs on the session factory rather than on each write
function, so a write added later, or made by code that never heard of change records (the
importer, a job's ``craton_audit`` write-back), cannot forget it:

- the unit of work (``after_flush``): new, changed and deleted objects of the recorded models
  with their attribute history, the rows that belong to them (variables, quotas) and the link
  collections (``Host.groups``, ``Group.children``, …);
- statements run with ``Session.execute`` (``do_orm_execute``): INSERT of hosts (a bulk create;
  their ids come from its RETURNING), of variable and link rows (from the parameters), DELETE
  of link rows and of objects (the rows are read before they go), UPDATE of objects' recorded
  columns (the rows are read before and after). An UPDATE of columns no record shows
  (versions, reachability) passes untouched; what cannot be told (an UPDATE of variable or
  link rows, an INSERT of objects without RETURNING id) is refused with a TypeError — write
  those through the ORM;
- ``before_commit`` writes the transaction's records: one per object however often it was
  written, in one INSERT per 5,000 records, after at most a query per kind of name or owner it
  needs (never one per object).

A savepoint rolled back (an import's dry run) takes what was noted inside it back with it; a
transaction rolled back writes nothing. Writes through a bare Core connection are not seen;
nothing writes what is recorded that way.

Never recorded: a secret's content (shown as ``"<hidden>"`` when it changed), an API key's
digest, and the value of a variable whose key looks sensitive (``craton.names.SENSITIVE_NAMES``:
passwords, tokens, …), at any depth of a value.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import enum
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import ColumnElement, Table, delete, event, insert, inspect, select
from sqlalchemy.orm import ORMExecuteState, Session, SessionTransaction, sessionmaker

from craton.db.inventory_version import parameter_rows
from craton.db.models import (
    ApiKey,
    Change,
    ChangeAction,
    Group,
    GroupVariable,
    Host,
    HostVariable,
    Job,
    Reference,
    Region,
    RegionVariable,
    Secret,
    Tenant,
    TenantQuota,
)
from craton.db.util import chunked
from craton.names import HIDDEN, is_sensitive_name
from craton.values import canonical_json, iso_utc, utcnow

if TYPE_CHECKING:
    from craton.db.session import Database

REQUEST_ID_LENGTH = 128
REASON_LENGTH = 500
"""Characters of ``X-Craton-Reason`` a record keeps (a longer one is refused)."""


@dataclasses.dataclass(frozen=True)
class Actor:
    """Who a session's writes are recorded as."""

    user: str
    tenant_id: int | None = None
    """The caller's own tenant; None for a cloud admin."""
    auth_strategy: str = "internal"
    api_key_name: str | None = None
    request_id: str | None = None
    reason: str | None = None
    job_id: int | None = None


SYSTEM = Actor(user="craton")
"""Writes of a session nobody was attributed to (Craton's own bookkeeping)."""

_ACTOR = "craton.change_actor"
_STATE = "craton.change_state"


def attribute(session: Session, actor: Actor) -> None:
    """Record ``session``'s writes as ``actor``'s from now on."""
    session.info[_ACTOR] = actor


def actor_of(session: Session) -> Actor:
    return session.info.get(_ACTOR, SYSTEM)


def watch(factory: sessionmaker[Session]) -> None:
    """Record the writes of every session ``factory`` makes. Register it after
    ``inventory_version.watch``: a ``do_orm_execute`` hook that runs the statement itself (a
    bulk host insert) ends the hooks after it."""
    for name, hook in _HOOKS:
        event.listen(factory, name, hook)


def unwatch(factory: sessionmaker[Session]) -> None:
    """Stop recording ``factory``'s sessions — for measuring what recording costs
    (benchmarks/changes.py); nothing in Craton calls it."""
    for name, hook in _HOOKS:
        event.remove(factory, name, hook)


# --- What is recorded of each model ------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Kind:
    name: str
    """The record's object_type."""
    fields: tuple[str, ...]
    """Columns a record shows, in this order."""
    parent: str | None
    """The column naming what the object belongs to (its tenant, region, host or group)."""
    label: str = "name"
    """The column that names the object."""


KINDS: dict[type, Kind] = {
    Tenant: Kind("tenant", ("name", "description"), None),
    Region: Kind("region", ("name", "description"), "tenant_id"),
    Host: Kind("host", ("name", "ip_address", "fqdn", "ssh_port", "ssh_user", "state"),
               "region_id"),
    Group: Kind("group", ("name", "description"), "region_id"),
    Secret: Kind("secret", ("name", "kind", "size", "backend", "ciphertext"), "host_id"),
    Reference: Kind("reference", ("name", "url", "ref", "path"), "group_id"),
    ApiKey: Kind("api_key", ("name", "role", "expires_at", "revoked_at"), "tenant_id"),
    Job: Kind("job", ("playbook", "source_url", "source_ref", "source_pin", "layout",
                      "filters_json", "forks", "check_mode", "diff_mode", "extra_vars_json",
                      "cancel_requested"), "region_id", label="playbook"),
}
BY_TABLE = {model.__tablename__: (model, kind) for model, kind in KINDS.items()}
SHOWN_AS = {"ciphertext": "content", "filters_json": "filters", "extra_vars_json": "extra_vars"}

VARIABLE_TABLES = {RegionVariable.__tablename__: ("region", "region_id"),
                   GroupVariable.__tablename__: ("group", "group_id"),
                   HostVariable.__tablename__: ("host", "host_id")}
VARIABLE_MODELS = {RegionVariable, GroupVariable, HostVariable}


@dataclasses.dataclass(frozen=True)
class Side:
    """One end of a link table: the object whose record shows the link, under ``link``."""

    kind: str
    column: str
    link: str
    other_kind: str
    other_column: str


LINK_TABLES: dict[str, tuple[Side, ...]] = {
    "host_groups": (Side("host", "host_id", "groups", "group", "group_id"),
                    Side("group", "group_id", "hosts", "host", "host_id")),
    "group_children": (Side("group", "parent_id", "children", "group", "child_id"),
                       Side("group", "child_id", "parents", "group", "parent_id")),
    "group_dependencies": (Side("group", "group_id", "depends_on", "group", "depends_on_id"),),
}
LINK_ATTRIBUTES: dict[tuple[type, str], tuple[str, str, str]] = {
    # (model, collection) → (link table, the column holding this object, the other's column)
    (Host, "groups"): ("host_groups", "host_id", "group_id"),
    (Group, "hosts"): ("host_groups", "group_id", "host_id"),
    (Group, "children"): ("group_children", "parent_id", "child_id"),
    (Group, "parents"): ("group_children", "child_id", "parent_id"),
    (Group, "depends_on"): ("group_dependencies", "group_id", "depends_on_id"),
}
WATCHED_TABLES = frozenset({*BY_TABLE, *VARIABLE_TABLES, *LINK_TABLES,
                            TenantQuota.__tablename__}) - {Job.__tablename__}
"""Tables whose Core statements are recorded. Jobs are recorded when submitted and cancelled
(ORM writes); the engine's own updates and pruning are not changes anyone made."""


def masked(key: str, value: Any) -> Any:
    """``value`` of variable ``key`` as a record may hold it: sensitive keys' values hidden,
    at every depth."""
    if is_sensitive_name(key):
        return HIDDEN
    if isinstance(value, Mapping):
        return {k: masked(k, v) for k, v in value.items()}
    if isinstance(value, list):
        return [masked("", item) for item in value]
    return value


def _shown(column: str, value: Any) -> Any:
    """A column's value as a record shows it."""
    if value is None or value is ABSENT:
        return value
    if column == "ciphertext":
        return HIDDEN
    if column == "filters_json":
        return json.loads(value)
    if column == "extra_vars_json":
        return masked("", json.loads(value))
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, dt.datetime):
        return iso_utc(value)
    return value


# --- What a transaction has done so far --------------------------------------------------------

class _Absent(enum.Enum):
    ABSENT = "absent"


ABSENT: Any = _Absent.ABSENT
"""The before of a key that did not exist, or the after of one that no longer does (an enum
member: it survives the copy a savepoint keeps, and equals no value)."""


@dataclasses.dataclass
class Pending:
    """What one transaction did to one object so far."""

    kind: str
    object_id: int
    action: ChangeAction
    name: str | None = None
    parent: int | None = None
    parent_known: bool = False
    fields: dict[str, list[Any]] = dataclasses.field(default_factory=dict)
    variables: dict[str, list[Any]] = dataclasses.field(default_factory=dict)
    links: dict[str, dict[str, set[int]]] = dataclasses.field(default_factory=dict)

    def set_field(self, name: str, before: Any, after: Any) -> None:
        _merge(self.fields, name, before, after)

    def set_variable(self, key: str, before: Any, after: Any) -> None:
        _merge(self.variables, key, before, after)

    def link(self, name: str, other: int, added: bool) -> None:
        change = self.links.setdefault(name, {"added": set(), "removed": set()})
        undo, do = (change["removed"], change["added"]) if added else (
            change["added"], change["removed"])
        if other in undo:
            undo.discard(other)
        else:
            do.add(other)


def _merge(diffs: dict[str, list[Any]], name: str, before: Any, after: Any) -> None:
    if name in diffs:
        diffs[name][1] = after
    else:
        diffs[name] = [before, after]


@dataclasses.dataclass
class TransactionState:
    entries: dict[tuple[str, int], Pending] = dataclasses.field(default_factory=dict)
    savepoints: dict[int, dict[tuple[str, int], Pending]] = dataclasses.field(
        default_factory=dict)


def _state(session: Session) -> TransactionState:
    found = session.info.get(_STATE)
    if found is None:
        found = session.info[_STATE] = TransactionState()
    return found


def _entry(session: Session, kind: str, object_id: int, action: ChangeAction) -> Pending:
    entries = _state(session).entries
    entry = entries.get((kind, object_id))
    if entry is None:
        entry = entries[(kind, object_id)] = Pending(kind, object_id, action)
    elif action is ChangeAction.DELETE or entry.action is ChangeAction.UPDATE:
        entry.action = action
    return entry


# --- The unit of work --------------------------------------------------------------------------

def _before_flush(session: Session, _context: Any, _instances: Any) -> None:
    """A deleted host's, group's or region's variables, read before they go when they were not
    loaded (loaded ones are deleted, and seen, with it)."""
    for obj in session.deleted:
        model = type(obj)
        if model in (Host, Group, Region) and "variable_rows" not in inspect(obj).dict:
            table = {Host: HostVariable, Group: GroupVariable, Region: RegionVariable}[model]
            column = getattr(table, VARIABLE_TABLES[table.__tablename__][1])
            entry = _entry(session, KINDS[model].name, obj.id, ChangeAction.DELETE)
            for key, text in session.connection().execute(
                    select(table.key, table.value_json).where(column == obj.id)):
                entry.set_variable(key, masked(key, json.loads(text)), ABSENT)


def _after_flush(session: Session, _context: Any) -> None:
    for obj in session.new:
        _seen(session, obj, new=True)
    for obj in session.dirty:
        _seen(session, obj, new=False)
    for obj in session.deleted:
        _gone(session, obj)


def _seen(session: Session, obj: Any, *, new: bool) -> None:
    model = type(obj)
    state = inspect(obj)
    kind = KINDS.get(model)
    if kind is not None:
        action = ChangeAction.CREATE if new else ChangeAction.UPDATE
        if model is Job:
            action = ChangeAction.SUBMIT if new else ChangeAction.CANCEL
        changed = []
        for column in kind.fields:
            history = state.attrs[column].history
            if new:
                changed.append((column, ABSENT, state.dict.get(column)))
            elif history.added:
                before = history.deleted[0] if history.deleted else None
                changed.append((column, before, history.added[0]))
        links = [(attribute, state.attrs[attribute].history)
                 for (owner, attribute) in LINK_ATTRIBUTES if owner is model]
        variables = (state.attrs["variable_rows"].history
                     if model in (Host, Group, Region) else None)
        if not changed and not any(h.added or h.deleted for _, h in links) and not (
                variables and (variables.added or variables.deleted)):
            return
        if model is ApiKey and any(column == "revoked_at" for column, _, _ in changed) \
                and not new:
            action = ChangeAction.REVOKE
        entry = _entry(session, kind.name, obj.id, action)
        _describe(entry, kind, state.dict)
        for column, before, after in changed:
            entry.set_field(SHOWN_AS.get(column, column), _shown(column, before),
                            _shown(column, after))
        for attribute, history in links:
            table, mine, theirs = LINK_ATTRIBUTES[(model, attribute)]
            for others, added in ((history.added, True), (history.deleted, False)):
                for other in others:
                    _link(session, table, {mine: obj.id, theirs: other.id}, added=added)
        if variables is not None:
            for row in variables.deleted:
                _variable(session, row, owner_id=obj.id, removed=True)
    elif model in VARIABLE_MODELS:
        owner_kind, column = VARIABLE_TABLES[model.__tablename__]
        if new:
            _variable(session, obj, owner_id=state.dict[column], removed=False)
        else:
            history = state.attrs["value_json"].history
            if history.added:
                before = json.loads(history.deleted[0]) if history.deleted else None
                entry = _entry(session, owner_kind, state.dict[column], ChangeAction.UPDATE)
                entry.set_variable(obj.key, masked(obj.key, before),
                                   masked(obj.key, json.loads(history.added[0])))
    elif model is TenantQuota:
        history = state.attrs["maximum"].history
        if new or history.added:
            before = ABSENT if new else (history.deleted[0] if history.deleted else None)
            entry = _entry(session, "tenant", obj.tenant_id, ChangeAction.UPDATE)
            entry.set_field(f"quotas.{obj.name}", before, obj.maximum)


def _gone(session: Session, obj: Any) -> None:
    model = type(obj)
    state = inspect(obj)
    kind = KINDS.get(model)
    if kind is not None:
        entry = _entry(session, kind.name, obj.id, ChangeAction.DELETE)
        _describe(entry, kind, state.dict)
        for column in kind.fields:
            if column in state.dict:
                entry.set_field(SHOWN_AS.get(column, column), _shown(column, state.dict[column]),
                                ABSENT)
        for (owner, attribute) in LINK_ATTRIBUTES:
            if owner is model and attribute in state.dict:
                for other in state.dict[attribute]:
                    entry.link(attribute, other.id, added=False)
    elif model in VARIABLE_MODELS:
        _variable(session, obj, owner_id=state.dict[VARIABLE_TABLES[model.__tablename__][1]],
                  removed=True)
    elif model is TenantQuota:
        entry = _entry(session, "tenant", obj.tenant_id, ChangeAction.UPDATE)
        entry.set_field(f"quotas.{obj.name}", obj.maximum, ABSENT)


def _describe(entry: Pending, kind: Kind, values: Mapping[str, Any]) -> None:
    """What an object's own state tells of it: its name and what it belongs to."""
    if kind.label in values:
        entry.name = values[kind.label]
    if kind.parent is not None and kind.parent in values:
        entry.parent, entry.parent_known = values[kind.parent], True


def _variable(session: Session, row: Any, *, owner_id: int, removed: bool) -> None:
    owner_kind, _ = VARIABLE_TABLES[type(row).__tablename__]
    value = masked(row.key, json.loads(row.value_json))
    entry = _entry(session, owner_kind, owner_id, ChangeAction.UPDATE)
    if removed:
        entry.set_variable(row.key, value, ABSENT)
    else:
        entry.set_variable(row.key, ABSENT, value)


def _link(session: Session, table: str, row: Mapping[str, Any], *, added: bool) -> None:
    for side in LINK_TABLES[table]:
        entry = _entry(session, side.kind, row[side.column], ChangeAction.UPDATE)
        entry.link(side.link, row[side.other_column], added)


# --- Statements --------------------------------------------------------------------------------

def _do_orm_execute(execute: ORMExecuteState) -> Any:
    if not (execute.is_insert or execute.is_update or execute.is_delete):
        return None
    statement: Any = execute.statement
    table: Table = statement.table
    if table.name not in WATCHED_TABLES:
        return None
    session = execute.session
    if execute.is_insert:
        if table.name in BY_TABLE:
            return _insert_objects(execute, table)
        rows = parameter_rows(execute)
        if table.name in VARIABLE_TABLES:
            owner_kind, column = VARIABLE_TABLES[table.name]
            for row in rows:
                entry = _entry(session, owner_kind, row[column], ChangeAction.UPDATE)
                entry.set_variable(row["key"], ABSENT,
                                   masked(row["key"], json.loads(row["value_json"])))
        elif table.name in LINK_TABLES:
            for row in rows:
                _link(session, table.name, row, added=True)
        else:
            raise TypeError(f"insert {table.name} rows through the ORM: a change record "
                            "could not show them")
        return None
    if execute.is_delete:
        _deleting(execute, table)
        return None
    written = _written_columns(statement, parameter_rows(execute))
    if table.name in BY_TABLE:
        if written & set(BY_TABLE[table.name][1].fields):
            return _updating(execute, table, written)
        return None
    raise TypeError(f"update {table.name} rows through the ORM: a change record could not "
                    "show what they were before")


def _updating(execute: ORMExecuteState, table: Table, written: set[str]) -> Any:
    """A set-based UPDATE of recorded columns: read the rows it selects before and after it
    runs (one query each per 5,000 rows), and note what changed."""
    statement: Any = execute.statement
    rows = parameter_rows(execute)
    if statement.whereclause is None or len(rows) > 1:
        raise TypeError(f"update {table.name} with one WHERE clause (or through the ORM): a "
                        "change record needs to read the rows first")
    connection = execute.session.connection()
    before = {row["id"]: row for row in connection.execute(
        select(table).where(statement.whereclause), dict(rows[0]) if rows else {}).mappings()}
    result = execute.invoke_statement()
    _, kind = BY_TABLE[table.name]
    for chunk in chunked(sorted(before)):
        for after in connection.execute(select(table).where(table.c.id.in_(chunk))).mappings():
            old = before[after["id"]]
            changed = [column for column in kind.fields
                       if column in written and old[column] != after[column]]
            if not changed:
                continue
            action = (ChangeAction.REVOKE if kind.name == "api_key" and "revoked_at" in changed
                      else ChangeAction.UPDATE)
            entry = _entry(execute.session, kind.name, after["id"], action)
            _describe(entry, kind, after)
            for column in changed:
                entry.set_field(SHOWN_AS.get(column, column), _shown(column, old[column]),
                                _shown(column, after[column]))
    return result


def _insert_objects(execute: ORMExecuteState, table: Table) -> Any:
    """A set-based INSERT of objects (hosts in bulk): run it, and note each row as created
    under the id it was given, or else the id its RETURNING gave it."""
    statement: Any = execute.statement
    rows = parameter_rows(execute)
    if rows and all(row.get("id") is not None for row in rows):
        ids = [row["id"] for row in rows]
        result = execute.invoke_statement()
    else:
        returning = [column["name"] for column in statement.returning_column_descriptions]
        if "id" not in returning:
            raise TypeError(f"insert {table.name} with its ids or RETURNING id (or through "
                            "the ORM): a change record needs each new row's id")
        frozen = execute.invoke_statement().freeze()
        ids = [row[returning.index("id")] for row in frozen().all()]
        result = frozen()
    _, kind = BY_TABLE[table.name]
    for object_id, row in zip(ids, rows, strict=True):
        entry = _entry(execute.session, kind.name, object_id, ChangeAction.CREATE)
        _describe(entry, kind, row)
        for column in kind.fields:
            entry.set_field(SHOWN_AS.get(column, column), ABSENT, _shown(column, row.get(column)))
    return result


def _deleting(execute: ORMExecuteState, table: Table) -> None:
    """Note the rows a DELETE removes, read before it runs."""
    statement: Any = execute.statement
    rows = parameter_rows(execute)
    if statement.whereclause is None and rows:
        raise TypeError(f"delete {table.name} rows with a WHERE clause: a change record needs "
                        "to read them first")
    session = execute.session
    where: ColumnElement[bool] | None = statement.whereclause
    stmt = select(table) if where is None else select(table).where(where)
    found = session.connection().execute(stmt, dict(rows[0]) if rows else {}).mappings().all()
    if table.name in LINK_TABLES:
        for row in found:
            _link(session, table.name, row, added=False)
    elif table.name in VARIABLE_TABLES:
        owner_kind, column = VARIABLE_TABLES[table.name]
        for row in found:
            entry = _entry(session, owner_kind, row[column], ChangeAction.UPDATE)
            entry.set_variable(row["key"], masked(row["key"], json.loads(row["value_json"])),
                               ABSENT)
    elif table.name in BY_TABLE:
        _, kind = BY_TABLE[table.name]
        for row in found:
            entry = _entry(session, kind.name, row["id"], ChangeAction.DELETE)
            _describe(entry, kind, row)
            for column in kind.fields:
                entry.set_field(SHOWN_AS.get(column, column), _shown(column, row[column]),
                                ABSENT)
    else:
        for row in found:
            entry = _entry(session, "tenant", row["tenant_id"], ChangeAction.UPDATE)
            entry.set_field(f"quotas.{row['name']}", row["maximum"], ABSENT)


def _written_columns(statement: Any, rows: Sequence[Mapping[str, Any]]) -> set[str]:
    written = {getattr(k, "key", k) for k in (getattr(statement, "_values", None) or {})}
    for row in rows:
        written.update(k for k in row if k != "id")
    return written


# --- Writing the records -----------------------------------------------------------------------

def _before_commit(session: Session) -> None:
    if session.in_nested_transaction():
        return  # a savepoint: its changes are written with the transaction's
    if session.new or session.dirty or session.deleted:
        session.flush()
    state = session.info.get(_STATE)
    if state is None or not state.entries:
        return
    entries = list(state.entries.values())
    state.entries.clear()
    records = _records(session, entries, actor_of(session))
    connection = session.connection()
    for chunk in chunked(records):
        connection.execute(insert(Change.__table__), list(chunk))


def _records(session: Session, entries: list[Pending], actor: Actor) -> list[dict[str, Any]]:
    resolver = _Resolver(session, entries)
    now = utcnow()
    records = []
    for entry in entries:
        diff = _diff(entry, resolver)
        if entry.action is ChangeAction.UPDATE and not diff:
            continue
        tenant_id, region_id = resolver.place(entry)
        records.append({
            "created_at": now,
            "request_id": actor.request_id[:REQUEST_ID_LENGTH] if actor.request_id else None,
            "tenant_id": tenant_id, "region_id": region_id,
            "object_type": entry.kind, "object_id": entry.object_id,
            "object_name": resolver.name(entry.kind, entry.object_id, entry.name),
            "action": entry.action, "actor_user": actor.user[:255],
            "actor_tenant_id": actor.tenant_id, "auth_strategy": actor.auth_strategy,
            "api_key_name": actor.api_key_name, "job_id": actor.job_id,
            "reason": actor.reason, "diff_json": canonical_json(diff),
        })
    return records


def _diff(entry: Pending, resolver: _Resolver) -> dict[str, Any]:
    diff: dict[str, Any] = {}
    for part, values in (("fields", entry.fields), ("variables", entry.variables)):
        shown = {}
        for name, (before, after) in values.items():
            if (before == after and before != HIDDEN) or (
                    part == "fields" and before in (ABSENT, None) and after in (ABSENT, None)):
                continue  # unchanged (two hidden values differed, or would not be here)
            shown[name] = {**({} if before is ABSENT else {"before": before}),
                           **({} if after is ABSENT else {"after": after})}
        if shown:
            diff[part] = dict(sorted(shown.items())) if part == "variables" else shown
    links = {}
    for name, change in entry.links.items():
        other_kind = "host" if name == "hosts" else "group"
        shown_link = {what: sorted(resolver.name(other_kind, other) or f"#{other}"
                                   for other in ids)
                      for what, ids in change.items() if ids}
        if shown_link:
            links[name] = shown_link
    if links:
        diff["links"] = links
    return diff


class _Resolver:
    """Names and owners the records need and the entries do not tell: read with one query per
    kind of object (per 5,000), what the session holds first."""

    def __init__(self, session: Session, entries: Iterable[Pending]) -> None:
        self.session = session
        self.entries = {(entry.kind, entry.object_id): entry for entry in entries}
        self.known: dict[tuple[str, int], tuple[str | None, int | None]] = {}
        wanted: dict[str, set[int]] = {"host": set(), "group": set(), "region": set()}
        for entry in self.entries.values():
            if entry.kind in wanted and not (entry.name and entry.parent_known):
                wanted[entry.kind].add(entry.object_id)
            if entry.kind in ("secret", "reference") and entry.parent is not None:
                wanted["host" if entry.kind == "secret" else "group"].add(entry.parent)
            for name, change in entry.links.items():
                other_kind = "host" if name == "hosts" else "group"
                wanted[other_kind].update(change["added"] | change["removed"])
        self._load("host", Host, wanted["host"])
        self._load("group", Group, wanted["group"])
        regions = set(wanted["region"])
        for entry in self.entries.values():
            if entry.kind in ("host", "group", "job"):
                regions.add(self._parent(entry))
            elif entry.kind in ("secret", "reference"):
                owner = self.known.get(("host" if entry.kind == "secret" else "group",
                                        entry.parent or 0))
                regions.add(owner[1] if owner else None)
        regions.discard(None)
        self._load("region", Region, {r for r in regions if r is not None})

    def _parent(self, entry: Pending) -> int | None:
        if entry.parent_known:
            return entry.parent
        known = self.known.get((entry.kind, entry.object_id))
        return known[1] if known else None

    def _load(self, kind: str, model: type, ids: set[int]) -> None:
        parent = KINDS[model].parent
        missing = []
        for object_id in ids:
            entry = self.entries.get((kind, object_id))
            if entry is not None and entry.name and entry.parent_known:
                self.known[(kind, object_id)] = (entry.name, entry.parent)
                continue
            obj = self.session.identity_map.get(inspect(model).identity_key_from_primary_key(
                (object_id,)))
            values = inspect(obj).dict if obj is not None else {}
            if "name" in values and parent in values:
                self.known[(kind, object_id)] = (values["name"], values[parent])
            else:
                missing.append(object_id)
        table: Any = model.__table__
        connection = self.session.connection()
        for chunk in chunked(sorted(missing)):
            for object_id, name, owner in connection.execute(
                    select(table.c.id, table.c.name, table.c[parent]).where(
                        table.c.id.in_(chunk))):
                self.known[(kind, object_id)] = (name, owner)

    def name(self, kind: str, object_id: int, fallback: str | None = None) -> str | None:
        entry = self.entries.get((kind, object_id))
        if entry is not None and entry.name:
            return entry.name
        known = self.known.get((kind, object_id))
        return known[0] if known else fallback

    def place(self, entry: Pending) -> tuple[int | None, int | None]:
        """(tenant id, region id) of ``entry``'s object."""
        if entry.kind == "tenant":
            return entry.object_id, None
        if entry.kind == "api_key":
            return entry.parent, None
        if entry.kind == "region":
            region_id: int | None = entry.object_id
        elif entry.kind in ("secret", "reference"):
            owner = self.known.get(("host" if entry.kind == "secret" else "group",
                                    entry.parent or 0))
            region_id = owner[1] if owner else None
        else:
            region_id = self._parent(entry)
        if region_id is None:
            return None, None
        region = self.entries.get(("region", region_id))
        if region is not None and region.parent_known:
            return region.parent, region_id
        known = self.known.get(("region", region_id))
        return (known[1] if known else None), region_id


# --- Savepoints and the end of a transaction ---------------------------------------------------

def _after_transaction_create(session: Session, transaction: SessionTransaction) -> None:
    if transaction.nested:
        state = _state(session)
        state.savepoints[id(transaction)] = copy.deepcopy(state.entries)


def _after_soft_rollback(session: Session, previous: SessionTransaction) -> None:
    state = session.info.get(_STATE)
    if state is None:
        return
    if previous.nested:
        kept = state.savepoints.pop(id(previous), None)
        if kept is not None:
            state.entries = kept
    else:
        state.entries.clear()


def _after_transaction_end(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:
        session.info.pop(_STATE, None)


# --- Retention ---------------------------------------------------------------------------------

PRUNE_BATCH = 10_000
"""Records deleted per transaction: short transactions (and small Galera write sets) however
many records go."""


def prune(database: Database, before: dt.datetime) -> int:
    """Delete the change records made before ``before`` (naive UTC), oldest first, a batch per
    transaction; returns how many went."""
    pruned = 0
    while True:
        with database.connection() as connection:
            ids = list(connection.scalars(select(Change.id).where(Change.created_at < before)
                                          .order_by(Change.id).limit(PRUNE_BATCH)))
            if not ids:
                return pruned
            connection.execute(delete(Change).where(Change.id.in_(ids)))
        pruned += len(ids)


_HOOKS: tuple[tuple[str, Any], ...] = (
    ("before_flush", _before_flush), ("after_flush", _after_flush),
    ("do_orm_execute", _do_orm_execute), ("before_commit", _before_commit),
    ("after_transaction_create", _after_transaction_create),
    ("after_soft_rollback", _after_soft_rollback),
    ("after_transaction_end", _after_transaction_end))
