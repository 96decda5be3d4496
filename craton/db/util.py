"""Small helpers shared by the domain modules' queries."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import TypeVar

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from craton.errors import Conflict

T = TypeVar("T")

# Parameters per statement: well under SQLite's 32,766 limit, large enough to stay fast.
CHUNK = 5000


def chunked(items: Sequence[T], size: int = CHUNK) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


@contextlib.contextmanager
def conflict_on_integrity_error(message: str,
                                fields: dict[str, str] | None = None) -> Iterator[None]:
    """Turn a unique-constraint race (another writer got there between our check and our
    insert) into the same 409 the check itself would have given."""
    try:
        yield
    except IntegrityError:
        raise Conflict(message, fields=fields) from None


def flush_or_conflict(session: Session, message: str, fields: dict[str, str] | None = None) -> None:
    with conflict_on_integrity_error(message, fields):
        session.flush()


def bump_versions(session: Session, model: type, ids: Sequence[int]) -> None:
    """Move the version (the ETag) of rows whose representation changed through a link table
    — membership is part of both a host's and a group's representation. Set-based, so adding
    10,000 hosts to a group is one UPDATE per chunk, not one per host."""
    from craton.values import utcnow

    now = utcnow()
    for chunk in chunked(ids):
        session.execute(
            update(model).where(model.id.in_(chunk)).values(version=model.version + 1,
                                                            updated_at=now)
        )
