"""API keys: ``craton_<key id>_<secret>``, shown once when made, kept only as a keyed hash.

The key id (16 hex digits) is public: the key is found by it with one indexed lookup. The secret
is 256 random bits. What the database keeps is HMAC-SHA256 of the whole key under a server-side
hash key (a file beside the secrets key, never in the database), compared in constant time.

Why a keyed hash and not a slow KDF (bcrypt, scrypt, argon2): a slow KDF exists to make guessing
a *low-entropy* password from its hash expensive. A 256-bit random secret cannot be guessed
however fast the hash is, so slowness would only cost every request its milliseconds. The key
of the HMAC adds that a stolen database alone does not even allow checking a guess.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import hmac
import os
import re
import secrets
from pathlib import Path

from sqlalchemy import Connection, select, update
from sqlalchemy.orm import Session

from craton.context import Action, RequestContext
from craton.db.models import NAME_LENGTH, ApiKey, ApiKeyRole
from craton.errors import Unauthorized, invalid
from craton.files import private_dir
from craton.values import utcnow

PREFIX = "craton"
KEY_PATTERN = re.compile(r"craton_([0-9a-f]{16})_([0-9a-f]{64})")
LAST_USED_RESOLUTION = dt.timedelta(minutes=1)
"""``last_used_at`` is written at most this often per key, not on every request."""
CHALLENGE = 'Bearer realm="craton"'
"""The WWW-Authenticate of every 401."""


def read_or_create_hash_key(path: Path) -> bytes:
    """The server's API-key hash key in ``path``; 32 fresh random bytes (hex, mode 0600) when
    the file is missing. Kept like the secrets key: a file in the private data directory."""
    if not path.exists():
        private_dir(path.parent)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # another process made it meanwhile: read theirs
        else:
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_hex(32) + "\n")
    text = path.read_text().strip()
    if len(text) < 32:
        raise ValueError(f"{path}: the API-key hash key must be at least 32 characters")
    return text.encode()


def digest_of(hash_key: bytes, key: str) -> str:
    return hmac.new(hash_key, key.encode(), hashlib.sha256).hexdigest()


def new_key() -> tuple[str, str]:
    """(key id, the whole key) of a fresh key."""
    key_id = secrets.token_hex(8)
    return key_id, f"{PREFIX}_{key_id}_{secrets.token_hex(32)}"


@dataclasses.dataclass(frozen=True)
class KeyHolder:
    """Whom a valid key speaks for."""

    id: int
    key_id: str
    name: str
    tenant_id: int | None
    role: ApiKeyRole
    used_at_stale: bool = False


def _refused(message: str) -> Unauthorized:
    return Unauthorized(message, headers={
        "WWW-Authenticate": f'{CHALLENGE}, error="invalid_token"'})


def check_key(connection: Connection, hash_key: bytes, key: str) -> KeyHolder:
    """The holder of ``key``, or Unauthorized: malformed, unknown, wrong secret, revoked or
    expired. ``used_at_stale`` says whether its ``last_used_at`` is a minute old or more: the
    caller then marks it used (``mark_used``), in a write transaction of its own."""
    match = KEY_PATTERN.fullmatch(key)
    if match is None:
        raise _refused("the API key is not valid")
    row = connection.execute(
        select(ApiKey.id, ApiKey.name, ApiKey.tenant_id, ApiKey.role, ApiKey.digest,
               ApiKey.expires_at, ApiKey.revoked_at, ApiKey.last_used_at)
        .where(ApiKey.key_id == match.group(1))).first()
    if row is None or not hmac.compare_digest(row.digest, digest_of(hash_key, key)):
        raise _refused("the API key is not valid")
    now = utcnow()
    if row.revoked_at is not None:
        raise _refused("the API key was revoked")
    if row.expires_at is not None and row.expires_at <= now:
        raise _refused("the API key has expired")
    stale = row.last_used_at is None or now - row.last_used_at >= LAST_USED_RESOLUTION
    return KeyHolder(id=row.id, key_id=match.group(1), name=row.name, tenant_id=row.tenant_id,
                     role=ApiKeyRole(row.role), used_at_stale=stale)


def mark_used(connection: Connection, holder: KeyHolder) -> None:
    """Record that ``holder``'s key was used now (at most once a minute: see ``check_key``)."""
    connection.execute(update(ApiKey).where(ApiKey.id == holder.id).values(last_used_at=utcnow()))


def create_key(session: Session, ctx: RequestContext, hash_key: bytes, *,
               tenant_id: int | None, name: str, role: ApiKeyRole | str,
               expires_at: dt.datetime | None = None) -> tuple[ApiKey, str]:
    """A new key of ``tenant_id`` (None: a cloud-admin key, which only a cloud admin makes);
    returns the row and the whole key, which exists nowhere else: show it once."""
    ctx.require(Action.MANAGE_API_KEYS)
    problems = {}
    if not name or not name.strip() or len(name) > NAME_LENGTH:
        problems["name"] = f"must be 1 to {NAME_LENGTH} characters, not only spaces"
    if role not in set(ApiKeyRole):
        problems["role"] = "must be one of " + ", ".join(ApiKeyRole)
    if expires_at is not None and expires_at <= utcnow():
        problems["expires_at"] = "must be in the future"
    if tenant_id is None and not ctx.is_admin:
        problems["tenant_id"] = "only a cloud admin makes keys without a tenant"
    elif tenant_id is None and role != ApiKeyRole.ADMIN:
        problems["role"] = "a key without a tenant is a cloud admin's: its role is admin"
    if problems:
        raise invalid(problems)
    key_id, key = new_key()
    row = ApiKey(key_id=key_id, tenant_id=tenant_id, name=name, role=ApiKeyRole(role),
                 digest=digest_of(hash_key, key), created_at=utcnow(), created_by=ctx.user,
                 expires_at=expires_at)
    session.add(row)
    session.flush()
    return row, key


def revoke_key(session: Session, ctx: RequestContext, key: ApiKey) -> ApiKey:
    """Revoke ``key`` from now on (a key revoked already keeps its first revocation time)."""
    ctx.require(Action.MANAGE_API_KEYS)
    if key.revoked_at is None:
        key.revoked_at = utcnow()
        session.flush()
    return key


def expiry_of(naive_or_aware: dt.datetime | None) -> dt.datetime | None:
    """A client's expiry time as stored: naive UTC."""
    if naive_or_aware is None or naive_or_aware.tzinfo is None:
        return naive_or_aware
    return naive_or_aware.astimezone(dt.UTC).replace(tzinfo=None)
