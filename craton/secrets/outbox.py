"""Deleting the payloads ``payload_discards`` records (``craton.db.discards``): content kept
in Barbican whose secrets and sensitive variables are gone.

Why an outbox: the rows go in a database transaction and the payloads in Barbican, which no
transaction spans. Deleting payloads first would leave rows pointing at nothing if the commit
then failed; deleting them after the commit with nothing written down loses them when
Barbican (or the process) fails just then. So the transaction that drops the rows also records
their references, and a payload is deleted only once that has committed — right away
(``attach``: after each commit that recorded some), and again for those that failed: after a
later such commit, with ``craton-manage secrets purge``, and when craton-api starts
(``purge``). A record goes only once Barbican has deleted the payload (or no longer has it),
so every payload is deleted at least once and no row ever refers to a deleted one.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence

from sqlalchemy import delete, select, update

from craton.db.models import PayloadDiscard
from craton.db.session import Database
from craton.secrets.backends import SecretStore

LOG = logging.getLogger(__name__)
BATCH = 100
"""Records read (and payloads deleted) per round."""


@dataclasses.dataclass
class Drained:
    deleted: int = 0
    """Payloads deleted (or found gone already), their records removed."""
    failed: int = 0
    """Payloads whose delete failed; their records stay for the next attempt."""
    error: str | None = None
    """Why the last one failed (the store's message, never content)."""

    def add(self, other: Drained) -> None:
        self.deleted += other.deleted
        self.failed += other.failed
        self.error = other.error or self.error


def attach(db: Database, store: SecretStore) -> None:
    """Delete the payloads a committed transaction of ``db`` dropped, right after it commits —
    and, when that went well, up to ``BATCH`` older ones whose delete had failed."""

    def after_commit(refs: list[str]) -> None:
        try:
            done = discard(db, store, refs)
            if not done.failed:
                discard(db, store, pending(db, oldest=True))
        except Exception as error:  # the write committed: it stands
            LOG.warning("payloads of deleted secrets are kept for a later attempt: %s",
                        type(error).__name__)

    db.on_discard(after_commit)


def pending(db: Database, *, after: str = "", oldest: bool = False,
            limit: int = BATCH) -> list[str]:
    """Recorded references: the ``limit`` first after ``after`` (by reference), or the
    ``limit`` oldest."""
    stmt = select(PayloadDiscard.ref)
    if oldest:
        stmt = stmt.order_by(PayloadDiscard.created_at, PayloadDiscard.ref)
    else:
        stmt = stmt.where(PayloadDiscard.ref > after).order_by(PayloadDiscard.ref)
    with db.transaction(write=False) as session:
        return list(session.scalars(stmt.limit(limit)))


def discard(db: Database, store: SecretStore, refs: Sequence[str]) -> Drained:
    """Delete the payloads of those of ``refs`` that are recorded, and their records; count a
    failure on the others. Stops after a round in which every delete failed (Barbican is
    down: one round of timeouts is enough to learn that)."""
    drained = Drained()
    for start in range(0, len(refs), BATCH):
        with db.transaction(write=False) as session:
            recorded = list(session.scalars(select(PayloadDiscard.ref).where(
                PayloadDiscard.ref.in_(refs[start:start + BATCH])).order_by(PayloadDiscard.ref)))
        for first in range(0, len(recorded), _round(store)):
            chunk = recorded[first:first + _round(store)]
            outcomes = store.discard_many([ref.encode() for ref in chunk])
            gone = [ref for ref, error in zip(chunk, outcomes, strict=True) if error is None]
            failed = {ref: error.message[:255] for ref, error in zip(chunk, outcomes, strict=True)
                      if error is not None}
            with db.transaction() as session:
                if gone:
                    session.execute(delete(PayloadDiscard).where(PayloadDiscard.ref.in_(gone)))
                for ref, message in failed.items():
                    session.execute(update(PayloadDiscard).where(PayloadDiscard.ref == ref)
                                    .values(attempts=PayloadDiscard.attempts + 1,
                                            last_error=message))
            drained.add(Drained(len(gone), len(failed),
                                next(iter(failed.values()), None)))
            if failed and not gone:
                return drained
    return drained


def purge(db: Database, store: SecretStore) -> Drained:
    """Try every recorded reference once (``craton-manage secrets purge``, craton-api's
    start); stops early while Barbican does not answer."""
    drained, after = Drained(), ""
    while refs := pending(db, after=after):
        done = discard(db, store, refs)
        drained.add(done)
        if done.failed and not done.deleted:
            break
        after = refs[-1]
    return drained


def _round(store: SecretStore) -> int:
    """Payloads deleted at once: Barbican's concurrency."""
    return store.barbican.settings.concurrency if store.barbican is not None else BATCH
