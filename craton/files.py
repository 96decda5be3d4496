"""Files and directories only Craton's own user may read.

The data directory holds the secrets key, the database (every tenant's inventory and sealed
secrets) and the cache of fetched sources (tenants' variable files, playbooks). Another account
on the machine — or a job's Ansible, should it run outside its sandbox as another user — must not
read any of it, so whatever Craton creates there is 0700 (directories) or 0600 (files) from the
moment it exists, never created open and narrowed afterwards.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600


def private_dir(path: Path) -> Path:
    """Create ``path`` and its missing parents with mode 0700; returns ``path``. Directories
    that exist already are left as they are: the operator may have chosen their mode (and the
    parent of a configured path may be a shared one, such as /var/lib)."""
    missing = []
    current = path
    while not current.exists() and current != current.parent:
        missing.append(current)
        current = current.parent
    for directory in reversed(missing):
        with contextlib.suppress(FileExistsError):
            directory.mkdir(mode=PRIVATE_DIR)
    return path


def write_private(path: Path, content: bytes) -> None:
    """Write ``content`` to ``path`` as a file of mode 0600 (created so, never wider)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_FILE)
    with os.fdopen(fd, "wb") as handle:
        handle.write(content)


def touch_private(path: Path) -> None:
    """Create ``path`` empty with mode 0600 unless it exists; an existing file of ours is
    narrowed to 0600 (a database an older version created 0644, say)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, PRIVATE_FILE)
    try:
        if os.fstat(fd).st_mode & 0o077:
            os.fchmod(fd, PRIVATE_FILE)
    finally:
        os.close(fd)
