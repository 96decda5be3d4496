"""Content kept outside the database whose rows are gone: a transactional outbox.

A secret's content, or a sensitive variable's value, kept in Barbican is a row holding
``barbican:<id>`` here and a payload there. Every way such a row disappears — a secret or a
variable deleted or given new content, a host, group, region or tenant deleted with what it
holds (the database's ``ON DELETE CASCADE`` drops those rows without the ORM seeing them) —
records the old reference in ``payload_discards`` *in the same transaction*. So the record
commits exactly when the rows go: a rolled-back delete leaves no record (its payload is still
referred to), and a committed one cannot lose its record, whatever happens to the process or
to Barbican afterwards. ``craton.secrets.outbox`` then deletes the payloads and their records:
right after the commit, and later again (the next such commit, ``craton-manage secrets
purge``, craton-api's start) for those whose delete failed.

The recording is done by mapper events, which fire for every row the ORM deletes or updates
(explicit deletes, delete-orphan cascades, attribute changes) — whichever code path and
process did it — with a query for the rows the database's cascades will drop.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from sqlalchemy import Connection, Select, event, insert, inspect, select
from sqlalchemy.orm import Mapper, Session, object_session, sessionmaker

from craton.db.models import (
    Group,
    GroupVariable,
    Host,
    HostVariable,
    PayloadDiscard,
    Region,
    RegionVariable,
    Secret,
    Tenant,
)
from craton.values import utcnow

OUTSIDE_PREFIX = "barbican:"
"""What a sealed value whose content is kept outside the database starts with."""
RECORDED = "craton.payload_discards"
"""Key of ``Session.info``: the references recorded in the session's current transaction."""

Notify = Callable[[list[str]], None]


def is_outside(sealed: bytes | str | None) -> bool:
    if sealed is None:
        return False
    text = sealed.decode("ascii", "replace") if isinstance(sealed, bytes) else sealed
    return text.startswith(OUTSIDE_PREFIX)


def watch(factory: sessionmaker[Session], notify: Notify) -> None:
    """Call ``notify`` with the references a session of ``factory`` recorded, once its
    transaction has committed (``craton.secrets.outbox`` deletes their payloads)."""

    def after_commit(session: Session) -> None:
        refs = session.info.pop(RECORDED, None)
        if refs:
            notify(sorted(refs))

    def after_rollback(session: Session) -> None:
        session.info.pop(RECORDED, None)

    event.listen(factory, "after_commit", after_commit)
    event.listen(factory, "after_rollback", after_rollback)


def _record(connection: Connection, target: Any, refs: Iterable[bytes | str | None]) -> None:
    """Insert the outside references among ``refs`` into ``payload_discards`` (those already
    there, from an earlier flush of the transaction, are left as they are)."""
    wanted = sorted({ref.decode() if isinstance(ref, bytes) else ref
                     for ref in refs if ref is not None and is_outside(ref)})
    if not wanted:
        return
    known = set(connection.scalars(select(PayloadDiscard.ref)
                                   .where(PayloadDiscard.ref.in_(wanted))))
    fresh = [ref for ref in wanted if ref not in known]
    if fresh:
        connection.execute(insert(PayloadDiscard.__table__),
                           [{"ref": ref, "created_at": utcnow(), "attempts": 0} for ref in fresh])
    session = object_session(target)
    if session is not None:
        session.info.setdefault(RECORDED, set()).update(wanted)


def _committed(target: Any, attribute: str) -> Any:
    """The value of ``attribute`` the database holds for ``target`` (before this flush)."""
    history = inspect(target).attrs[attribute].load_history()
    values = [*history.unchanged, *history.deleted]
    return values[0] if values else None


# --- rows deleted or changed by the ORM -------------------------------------------------------

def _row_deleted(column: str) -> Callable[[Mapper[Any], Connection, Any], None]:
    def before_delete(_mapper: Mapper[Any], connection: Connection, target: Any) -> None:
        _record(connection, target, [_committed(target, column)])
    return before_delete


def _row_updated(column: str) -> Callable[[Mapper[Any], Connection, Any], None]:
    def before_update(_mapper: Mapper[Any], connection: Connection, target: Any) -> None:
        history = inspect(target).attrs[column].history
        if history.deleted and history.added != history.deleted:
            _record(connection, target, history.deleted)
    return before_update


for _model, _column in ((Secret, "ciphertext"), (HostVariable, "sealed"),
                        (GroupVariable, "sealed"), (RegionVariable, "sealed")):
    event.listen(_model, "before_delete", _row_deleted(_column))
    event.listen(_model, "before_update", _row_updated(_column))


# --- rows the database's cascades drop ----------------------------------------------------------

def _held_below(model: type, ident: int) -> list[Select[Any]]:
    """Queries of the sealed values of the secrets and variables a delete of ``model``
    ``ident`` drops by cascade."""
    hosts: Any
    groups: Any = None
    regions: Any = None
    if model is Host:
        hosts = [ident]
    elif model is Group:
        hosts, groups = None, [ident]
    elif model is Region:
        hosts = select(Host.id).where(Host.region_id == ident)
        groups = select(Group.id).where(Group.region_id == ident)
        regions = [ident]
    else:
        regions = select(Region.id).where(Region.tenant_id == ident)
        hosts = select(Host.id).where(Host.region_id.in_(regions))
        groups = select(Group.id).where(Group.region_id.in_(regions))
    outside = f"{OUTSIDE_PREFIX}%"
    queries: list[Select[Any]] = []
    if hosts is not None:
        queries += [select(Secret.ciphertext).where(Secret.host_id.in_(hosts),
                                                    Secret.backend == "barbican"),
                    select(HostVariable.sealed).where(HostVariable.host_id.in_(hosts),
                                                      HostVariable.sealed.like(outside))]
    if groups is not None:
        queries.append(select(GroupVariable.sealed).where(GroupVariable.group_id.in_(groups),
                                                          GroupVariable.sealed.like(outside)))
    if regions is not None:
        queries.append(select(RegionVariable.sealed).where(
            RegionVariable.region_id.in_(regions), RegionVariable.sealed.like(outside)))
    return queries


def _owner_deleted(mapper: Mapper[Any], connection: Connection, target: Any) -> None:
    # Rows the ORM deletes itself (loaded children) went before their owner, through the
    # events above; what is left is what the database's cascade will drop.
    refs = [ref for query in _held_below(mapper.class_, target.id)
            for ref in connection.scalars(query)]
    _record(connection, target, refs)


for _model in (Tenant, Region, Host, Group):
    event.listen(_model, "before_delete", _owner_deleted)
