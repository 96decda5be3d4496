"""Secret content kept in Barbican (``[secrets] backend = barbican``): Craton stores each
payload as a Barbican secret and keeps only its id (``barbican:<uuid>``) with the metadata.

Craton speaks to Barbican as its own service user (``[barbican]``), not with the caller's
token: a job builds its bundle long after the request that submitted it (its token may have
expired, and API-key callers have none), ``craton-manage secrets migrate`` runs with no caller,
and Craton's own policy already decides who may reveal or use a secret. The payloads live in
the service user's project, which nobody else needs access to.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from craton.config import BarbicanSettings
from craton.db.discards import OUTSIDE_PREFIX
from craton.errors import CratonError

LOG = logging.getLogger(__name__)
PREFIX = OUTSIDE_PREFIX.encode()
"""What a sealed value kept in Barbican starts with; the rest is the Barbican secret's id."""
T = TypeVar("T")
R = TypeVar("R")


class BarbicanUnavailable(CratonError):
    """Barbican did not answer, or answered with an error: nothing was written."""

    status = 503
    headers = {"Retry-After": "30"}


class BarbicanContentMissing(CratonError):
    """Barbican no longer holds a payload Craton refers to."""

    status = 500


def is_barbican(sealed: bytes) -> bool:
    return sealed.startswith(PREFIX)


class BarbicanBackend:
    """Payloads in Barbican through python-barbicanclient over a keystoneauth1 session of the
    service user (token renewed by the session as it expires). The session is thread-safe:
    many payloads are read (or deleted) at once, ``[barbican] concurrency`` at a time."""

    name = "barbican"

    def __init__(self, settings: BarbicanSettings) -> None:
        self.settings = settings
        self._client: Any = None
        self._lock = threading.Lock()

    def _barbican(self) -> Any:
        """The client, made on first use: making it asks Barbican for its versions, which must
        not keep a process from starting while Barbican is down."""
        with self._lock:
            if self._client is None:
                from barbicanclient import client
                from keystoneauth1 import identity, session

                settings = self.settings
                auth = identity.Password(
                    auth_url=settings.auth_url, username=settings.username,
                    password=settings.password, project_name=settings.project_name,
                    user_domain_name=settings.user_domain_name,
                    project_domain_name=settings.project_domain_name)
                keystone_session = session.Session(auth=auth, timeout=settings.timeout)
                self._client = client.Client(
                    session=keystone_session, endpoint=settings.endpoint or None,
                    interface=settings.interface, region_name=settings.region_name or None)
            return self._client

    def _call(self, doing: str, call: Any) -> Any:
        """``call(client)``; any failure to reach Barbican or error it answers becomes a 503
        naming Barbican (the exception's class, never a payload, goes into the message)."""
        from barbicanclient import exceptions as barbican_exceptions
        from keystoneauth1 import exceptions as ksa_exceptions

        try:
            return call(self._barbican())
        except barbican_exceptions.HTTPClientError as error:
            if error.status_code == 404:
                raise BarbicanContentMissing(
                    f"Barbican no longer holds the content of this secret ({doing})") from None
            raise self._unavailable(doing, error) from None
        except (barbican_exceptions.HTTPError, ksa_exceptions.ClientException, OSError,
                ValueError) as error:
            raise self._unavailable(doing, error) from None

    def _unavailable(self, doing: str, error: Exception) -> BarbicanUnavailable:
        LOG.warning("Barbican: could not %s: %s", doing, type(error).__name__)
        with self._lock:
            self._client = None  # made again next time: the endpoint may have moved
        return BarbicanUnavailable(
            f"Barbican (the secret store) is unavailable: could not {doing} "
            f"({type(error).__name__}); nothing was changed, try again later")

    def seal(self, plaintext: bytes) -> bytes:
        ref = self._call("store a secret", lambda barbican: barbican.secrets.create(
            name="craton", payload=plaintext).store())
        return PREFIX + ref.rstrip("/").rpartition("/")[2].encode()

    def open(self, sealed: bytes) -> bytes:
        uuid = sealed[len(PREFIX):].decode()
        payload = self._call("read a secret", lambda barbican: barbican.secrets.get(
            uuid).payload)
        return payload if isinstance(payload, bytes) else payload.encode()

    def open_many(self, sealed: Sequence[bytes]) -> list[bytes]:
        """The payloads of ``sealed``, in its order, read ``[barbican] concurrency`` at a
        time; the first failure is raised."""
        return self._each(self.open, sealed)

    def discard_many(self, sealed: Sequence[bytes]) -> list[CratonError | None]:
        """Delete the payloads of ``sealed`` (as ``discard``), at once: for each, None or
        why it failed."""
        def attempt(one: bytes) -> CratonError | None:
            try:
                self.discard(one)
            except CratonError as error:
                return error
            return None
        return self._each(attempt, sealed)

    def _each(self, call: Callable[[T], R], items: Sequence[T]) -> list[R]:
        if len(items) < 2 or self.settings.concurrency < 2:
            return [call(item) for item in items]
        with ThreadPoolExecutor(max_workers=min(len(items), self.settings.concurrency),
                                thread_name_prefix="barbican") as pool:
            return list(pool.map(call, items))

    def check(self, sealed: bytes) -> None:
        """Barbican answers for this secret (its metadata, not its payload)."""
        uuid = sealed[len(PREFIX):].decode()
        self._call("reach Barbican", lambda barbican: barbican.secrets.get(uuid).status)

    def discard(self, sealed: bytes) -> None:
        """Delete the payload (one already gone is fine)."""
        uuid = sealed[len(PREFIX):].decode()
        with contextlib.suppress(BarbicanContentMissing):
            self._call("delete a secret", lambda barbican: barbican.secrets.delete(uuid))
