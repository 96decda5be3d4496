"""Create, change, reveal and delete host secrets.

Content kept outside the database (Barbican) follows the database's transaction: content
sealed for a write that rolls back is discarded, and content a committed write replaced or
deleted (or dropped with its host, region or tenant) is recorded in that transaction and
discarded after the commit (``craton.db.discards``, ``craton.secrets.outbox``) — so a failure
on either side leaves no secret pointing at missing content.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from sqlalchemy import event, select
from sqlalchemy.orm import Session

from craton.config import QuotaSettings
from craton.context import Action, RequestContext
from craton.db.models import Host, Quota, Region, Secret, SecretKind
from craton.db.util import flush_or_conflict
from craton.errors import Conflict, CratonError, invalid
from craton.inventory.quotas import check_quota
from craton.names import check, slug_problem
from craton.secrets.backends import SecretBackend, SecretStore

LOG = logging.getLogger(__name__)
MAX_SECRET_BYTES = 256 * 1024
ON_ROLLBACK = "craton.discard_on_rollback"
"""Key of ``Session.info``: (backend, sealed) pairs sealed for the current transaction, to
discard if it rolls back."""


def _discard_on_rollback(session: Session, backend: SecretBackend, sealed: bytes) -> None:
    session.info.setdefault(ON_ROLLBACK, []).append((backend, sealed))


@event.listens_for(Session, "after_commit")
def _after_commit(session: Session) -> None:
    session.info.pop(ON_ROLLBACK, None)


@event.listens_for(Session, "after_rollback")
def _after_rollback(session: Session) -> None:
    for backend, sealed in session.info.pop(ON_ROLLBACK, ()):
        try:
            backend.discard(sealed)
        except CratonError as error:
            # The content stays where it is kept, unreferenced; the rollback itself stands.
            LOG.warning("could not discard the content sealed for a write that failed: %s",
                        error.message)
PEM_BLOCK = re.compile(r"-----BEGIN ([A-Z0-9 ]+)-----\r?\n.+?\r?\n-----END \1-----", re.S)


def content_problem(kind: SecretKind, content: object) -> str | None:
    """Why ``content`` cannot be stored as ``kind``. The reason never quotes the content."""
    if not isinstance(content, str) or not content:
        return "must be a non-empty string"
    if len(content.encode()) > MAX_SECRET_BYTES:
        return f"must be at most {MAX_SECRET_BYTES} bytes"
    if kind is SecretKind.SSH_PRIVATE_KEY:
        return _private_key_problem(content)
    if kind is SecretKind.PEM and not PEM_BLOCK.search(content):
        return "must hold at least one PEM block (-----BEGIN …----- … -----END …-----)"
    return None


def _private_key_problem(content: str) -> str | None:
    data = content.encode()
    loaders = (serialization.load_ssh_private_key, serialization.load_pem_private_key)
    encrypted = False
    for load in loaders:
        try:
            load(data, password=None)
            return None
        except TypeError:
            encrypted = True  # "password was not given but private key is encrypted"
        except (ValueError, UnsupportedAlgorithm):
            continue
    if encrypted:
        return "is encrypted with a passphrase, which Ansible cannot type; store it decrypted"
    return "is not an OpenSSH or PEM private key"


def create_secret(session: Session, ctx: RequestContext, host: Host, data: Mapping[str, Any],
                  backend: SecretBackend, *, quotas: QuotaSettings) -> Secret:
    ctx.require(Action.WRITE)
    name, kind = data["name"], SecretKind(data["kind"])
    check("name", slug_problem(name))
    check("content", content_problem(kind, data["content"]))
    if session.scalar(select(Secret.id).where(Secret.host_id == host.id,
                                              Secret.name == name)) is not None:
        raise Conflict(f"secret {name!r} already exists on host {host.id}",
                       fields={"name": "already exists on the host"})
    tenant_id = session.scalar(select(Region.tenant_id).where(Region.id == host.region_id))
    check_quota(session, tenant_id, Quota.SECRETS, 1, quotas)
    plaintext = data["content"].encode()
    sealed = backend.seal(plaintext)
    _discard_on_rollback(session, backend, sealed)
    secret = Secret(host_id=host.id, name=name, kind=kind, size=len(plaintext),
                    backend=backend.name, ciphertext=sealed)
    session.add(secret)
    flush_or_conflict(session, f"secret {name!r} already exists on host {host.id}",
                      {"name": "already exists on the host"})
    return secret


def update_secret(session: Session, ctx: RequestContext, secret: Secret,
                  data: Mapping[str, Any], backend: SecretBackend) -> Secret:
    """Rename, re-kind or replace the content. Changing the kind re-checks the content."""
    ctx.require(Action.WRITE)
    kind = SecretKind(data.get("kind", secret.kind))
    if "name" in data and data["name"] != secret.name:
        check("name", slug_problem(data["name"]))
        if session.scalar(select(Secret.id).where(Secret.host_id == secret.host_id,
                                                  Secret.name == data["name"])) is not None:
            raise Conflict(f"secret {data['name']!r} already exists on host {secret.host_id}",
                           fields={"name": "already exists on the host"})
        secret.name = data["name"]
    if "content" in data:
        check("content", content_problem(kind, data["content"]))
        plaintext = data["content"].encode()
        sealed = backend.seal(plaintext)
        _discard_on_rollback(session, backend, sealed)
        secret.ciphertext, secret.size, secret.backend = sealed, len(plaintext), backend.name
    elif kind is not secret.kind:
        problem = content_problem(kind, reveal_secret(ctx, secret, backend, check_role=False))
        if problem is not None:
            raise invalid({"kind": f"the stored content {problem}"})
    secret.kind = kind
    flush_or_conflict(session, "secret name already exists on the host",
                      {"name": "already exists on the host"})
    return secret


def reveal_secret(ctx: RequestContext, secret: Secret, backend: SecretBackend, *,
                  check_role: bool = True) -> str:
    if check_role:
        ctx.require(Action.REVEAL_SECRETS)
    return backend.open(secret.ciphertext).decode()


def delete_secret(session: Session, ctx: RequestContext, secret: Secret,
                  backend: SecretBackend) -> None:
    """Delete the secret; content kept outside the database goes once the delete commits
    (``craton.secrets.outbox``). The store must answer first, so that an outage answers 503
    rather than leave the content waiting for Barbican's return."""
    ctx.require(Action.WRITE)
    backend.check(secret.ciphertext)
    session.delete(secret)
    session.flush()


def move_content(session: Session, secret: Secret, store: SecretStore,
                 target: SecretBackend) -> None:
    """Keep ``secret``'s content in ``target`` from now on (``craton-manage secrets
    migrate``): the old copy is discarded once the change commits, the new one if it does
    not."""
    plaintext = store.open(secret.ciphertext)
    sealed = target.seal(plaintext)
    _discard_on_rollback(session, target, sealed)
    secret.ciphertext, secret.backend = sealed, target.name
    session.flush()
