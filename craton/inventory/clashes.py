"""Names that are each valid but cannot live together in one region.

Ansible keeps hosts and groups in one namespace (``InventoryData.add_child`` takes either, and a
YAML inventory's ``hosts:`` entry of a group's name is read as that group), so a host may not
share a group's name, in either direction. And a host's or group's variables live in a file named
after it, which Ansible finds by trying the bare name and the name plus ``.json``, ``.yml`` and
``.yaml``: hosts ``h0`` and ``h0.json`` share one file, as do ``CaseHost`` and ``casehost`` on a
case-insensitive file system (:func:`craton.names.vars_file_clashes`).

Every check runs after the region's row is locked (SELECT … FOR UPDATE on MariaDB; SQLite
serializes writers), inside the write's transaction: two writers of one region check one after
the other, so neither can slip a clashing name past the other.
"""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy import select
from sqlalchemy.orm import Session

from craton.db.models import Group, Host, Region
from craton.db.util import chunked
from craton.errors import invalid
from craton.names import vars_file_clashes


def lock_region(session: Session, region_id: int) -> None:
    """Hold the region's row until the transaction ends, serializing its name changes."""
    session.execute(select(Region.id).where(Region.id == region_id).with_for_update())


def _names_among(session: Session, model: type[Host] | type[Group], region_id: int,
                 names: list[str]) -> set[str]:
    found: set[str] = set()
    for chunk in chunked(names):
        found.update(session.scalars(select(model.name).where(model.region_id == region_id,
                                                              model.name.in_(chunk))))
    return found


def check_new_names(session: Session, region_id: int, model: type[Host] | type[Group],
                    names: Mapping[str, str], *, renaming: int | None = None,
                    what: str = "") -> None:
    """Refuse (422, naming each field) hosts or groups (``model``) to be named ``names`` (field
    → name) in the region: a name a group (for hosts) or host (for groups) has, or one whose
    vars file another host's (group's) would share. ``renaming``: the id of the object being
    renamed, whose old name does not count. Locks the region first."""
    if not names:
        return
    lock_region(session, region_id)
    other = Group if model is Host else Host
    kind, other_kind = ("host", "group") if model is Host else ("group", "host")
    problems: dict[str, str] = {}
    shared = _names_among(session, other, region_id, list(set(names.values())))
    for field, name in names.items():
        if name in shared:
            problems[field] = (f"a {other_kind} of the region is named {name!r}; Ansible keeps "
                               "hosts and groups in one namespace")
    existing_stmt = select(model.name).where(model.region_id == region_id)
    if renaming is not None:
        existing_stmt = existing_stmt.where(model.id != renaming)
    clashes = vars_file_clashes(names.values(), session.scalars(existing_stmt))
    for field, name in names.items():
        if name in clashes and field not in problems:
            problems[field] = (f"would share its {kind}_vars file with {kind} "
                               f"{clashes[name]!r} (names equal but for case, or one the "
                               "other plus .json/.yml/.yaml)")
    if problems:
        raise invalid(problems, what)
