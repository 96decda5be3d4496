"""Where secret content is kept. ``local`` (the default) encrypts it with Fernet (AES-128-CBC +
HMAC) under keys from the configuration and stores the token in the database; ``MultiFernet``
lets an operator rotate keys by putting the new one first. ``barbican`` keeps it in Barbican
(``craton.secrets.barbican``) and the database keeps its id. Whatever is configured, each
stored value is opened by the backend that sealed it, so switching (or migrating) loses
nothing."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from craton.config import Settings
from craton.errors import CratonError
from craton.files import private_dir
from craton.secrets.barbican import BarbicanBackend, BarbicanUnavailable, is_barbican


class SecretBackend(Protocol):
    name: str

    def seal(self, plaintext: bytes) -> bytes: ...

    def open(self, sealed: bytes) -> bytes: ...

    def open_many(self, sealed: Sequence[bytes]) -> list[bytes]:
        """The contents of ``sealed``, in its order (read at once where that is faster)."""

    def check(self, sealed: bytes) -> None:
        """Raise if the store holding ``sealed`` cannot be reached (before a delete)."""

    def discard(self, sealed: bytes) -> None:
        """Forget ``sealed``'s content where it is kept outside the database."""


class SecretUnavailable(CratonError):
    """The stored content cannot be decrypted with the configured keys."""

    status = 500


class FernetBackend:
    name = "fernet"

    def __init__(self, keys: list[str]) -> None:
        if not keys:
            raise ValueError("at least one Fernet key is required")
        self._fernet = MultiFernet([Fernet(key.encode()) for key in keys])

    def seal(self, plaintext: bytes) -> bytes:
        return self._fernet.encrypt(plaintext)

    def open(self, sealed: bytes) -> bytes:
        try:
            return self._fernet.decrypt(sealed)
        except InvalidToken:
            raise SecretUnavailable(
                "a stored secret cannot be decrypted with the configured keys"
            ) from None

    def open_many(self, sealed: Sequence[bytes]) -> list[bytes]:
        return [self.open(one) for one in sealed]

    def check(self, sealed: bytes) -> None:
        """In the database, which the request already reached."""

    def discard(self, sealed: bytes) -> None:
        """Deleting the row deletes the content."""


class SecretStore:
    """The configured backend seals new content; each sealed value is opened (checked,
    discarded) by the backend that sealed it."""

    def __init__(self, local: FernetBackend, barbican: BarbicanBackend | None,
                 primary: str) -> None:
        self.local = local
        self.barbican = barbican
        self.primary: SecretBackend = barbican if primary == "barbican" and barbican else local
        self.name = self.primary.name

    def backend_of(self, sealed: bytes) -> SecretBackend:
        if not is_barbican(sealed):
            return self.local
        if self.barbican is None:
            raise BarbicanUnavailable("this secret's content is kept in Barbican, but [barbican] "
                                      "is not configured")
        return self.barbican

    def seal(self, plaintext: bytes) -> bytes:
        return self.primary.seal(plaintext)

    def open(self, sealed: bytes) -> bytes:
        return self.backend_of(sealed).open(sealed)

    def open_many(self, sealed: Sequence[bytes]) -> list[bytes]:
        """The contents of ``sealed``, in its order: those in Barbican read at once
        (``[barbican] concurrency`` at a time) rather than one request after another."""
        outside = [one for one in sealed if is_barbican(one)]
        if not outside:
            return [self.local.open(one) for one in sealed]
        barbican = self.backend_of(outside[0])  # raises when [barbican] is not configured
        opened = iter(barbican.open_many(outside))
        return [next(opened) if is_barbican(one) else self.local.open(one) for one in sealed]

    def check(self, sealed: bytes) -> None:
        self.backend_of(sealed).check(sealed)

    def discard(self, sealed: bytes) -> None:
        self.backend_of(sealed).discard(sealed)

    def discard_many(self, sealed: Sequence[bytes]) -> list[CratonError | None]:
        """Forget the contents of ``sealed`` kept outside the database, at once: for each,
        None or why that failed."""
        if self.barbican is None:
            return [None if not is_barbican(one) else BarbicanUnavailable(
                "this content is kept in Barbican, but [barbican] is not configured")
                for one in sealed]
        outside = [one for one in sealed if is_barbican(one)]
        failed = iter(self.barbican.discard_many(outside))
        return [next(failed) if is_barbican(one) else None for one in sealed]


def read_or_create_key(path: Path) -> str:
    """The key in ``path``; a fresh one, written with mode 0600, when the file is missing."""
    if not path.exists():
        private_dir(path.parent)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(Fernet.generate_key().decode() + "\n")
    return path.read_text().strip()


def load_backend(settings: Settings) -> SecretStore:
    keys = list(settings.secrets.keys) or [read_or_create_key(settings.secrets_key_file)]
    barbican = BarbicanBackend(settings.barbican) if settings.barbican.auth_url else None
    return SecretStore(FernetBackend(keys), barbican, settings.secrets.backend)
