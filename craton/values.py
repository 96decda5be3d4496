"""Values every layer shares: the one serialization of a variable value, its digest, and
time as both databases store it. The bottom layer: imports nothing of Craton's."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from typing import Any


def utcnow() -> dt.datetime:
    """Naive UTC: both SQLite and MariaDB DATETIME columns are zone-less."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                              allow_nan=False)


def iso_utc(moment: dt.datetime | None) -> str | None:
    """A stored (naive UTC) time as ISO 8601 with a Z."""
    return None if moment is None else moment.isoformat(timespec="microseconds") + "Z"


def canonical_json(value: Any) -> str:
    """The one serialization of a variable value: sorted keys, no spaces, no NaN."""
    return _CANONICAL.encode(value)


def value_digest(canonical: str) -> str:
    """Short digest of a canonical JSON value, indexed with the key for ``key=value`` filters."""
    return hashlib.blake2b(canonical.encode(), digest_size=10).hexdigest()
