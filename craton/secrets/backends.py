"""Where secret content is kept. The default encrypts it with Fernet (AES-128-CBC + HMAC) under
keys from the configuration and stores the token in the database; ``MultiFernet`` lets an
operator rotate keys by putting the new one first."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from craton.config import Settings
from craton.errors import CratonError
from craton.files import private_dir


class SecretBackend(Protocol):
    name: str

    def seal(self, plaintext: bytes) -> bytes: ...

    def open(self, sealed: bytes) -> bytes: ...


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


def read_or_create_key(path: Path) -> str:
    """The key in ``path``; a fresh one, written with mode 0600, when the file is missing."""
    if not path.exists():
        private_dir(path.parent)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(Fernet.generate_key().decode() + "\n")
    return path.read_text().strip()


def load_backend(settings: Settings) -> SecretBackend:
    keys = list(settings.secrets.keys) or [read_or_create_key(settings.secrets_key_file)]
    return FernetBackend(keys)
