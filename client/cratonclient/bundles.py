"""Inventory bundles: download a selection of a region to a file, or extract it into a
directory, streaming, and without downloading again what has not changed (``If-None-Match``).

Extraction is safe against an archive that tries to escape: every entry must be a plain file
or directory whose path stays inside the target (no absolute paths, no ``..``, no links, no
devices), or nothing is extracted at all — the archive is unpacked into a new directory beside
the target, which replaces the target only once everything is in place.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import stat
import tarfile
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import IO, TYPE_CHECKING, Any

from cratonclient.errors import BundleError
from cratonclient.managers import Manager, host_filters

if TYPE_CHECKING:
    import requests

ETAG_FILE = ".craton-etag"
"""Kept in an extracted directory: the ETag of the bundle it holds."""
CHUNK = 1024 * 1024


@dataclasses.dataclass
class Bundle:
    """What a download or an extraction did."""

    path: Path
    etag: str | None
    changed: bool
    """False when the server answered 304: the bundle at ``path`` is already current."""


class Inventory(Manager):
    """``GET /v1/inventory/<region>.tgz|.zip|.json``."""

    def _open(self, region: int, fmt: str, layout: str | None, etag: str | None,
              filters: dict[str, Any]) -> requests.Response:
        if fmt not in ("tgz", "zip", "json"):
            raise ValueError(f"format must be tgz, zip or json, not {fmt!r}")
        params = {**host_filters(**filters), "layout": layout}
        headers = {"Accept": "*/*"}
        if etag:
            headers["If-None-Match"] = etag
        return self.transport.request("GET", f"/v1/inventory/{region}.{fmt}", params=params,
                                      headers=headers, stream=True)

    def download(self, region: int, path: str | os.PathLike[str], *, fmt: str = "tgz",
                 layout: str | None = None, etag: str | None = None,
                 **filters: Any) -> Bundle:
        """Write the bundle to ``path`` (streamed, through a temporary file beside it). With
        ``etag`` (the one a previous download returned) and ``path`` present, an unchanged
        bundle is not downloaded again. Filters as the hosts list takes them."""
        target = Path(path)
        response = self._open(region, fmt, layout, etag if target.exists() else None, filters)
        with contextlib.closing(response):
            if response.status_code == 304:
                return Bundle(target, etag, changed=False)
            with _temporary_beside(target) as (handle, temporary):
                for chunk in response.iter_content(CHUNK):
                    handle.write(chunk)
                handle.close()
                os.replace(temporary, target)
        return Bundle(target, response.headers.get("ETag"), changed=True)

    def extract(self, region: int, directory: str | os.PathLike[str], *, fmt: str = "tgz",
                layout: str | None = None, **filters: Any) -> Bundle:
        """Extract the bundle into ``directory`` (replacing what it held). The ETag is kept
        in ``directory/.craton-etag``: when the server says the bundle is unchanged, nothing
        is downloaded or touched."""
        if fmt == "json":
            raise ValueError("a .json inventory is one file: use download()")
        target = Path(directory)
        known = _read_etag(target)
        response = self._open(region, fmt, layout, known, filters)
        with contextlib.closing(response):
            if response.status_code == 304:
                return Bundle(target, known, changed=False)
            etag = response.headers.get("ETag")
            target.parent.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
            try:
                if fmt == "tgz":
                    response.raw.decode_content = True
                    extract_tar(response.raw, staging)
                else:
                    with tempfile.TemporaryFile(dir=target.parent) as spool:
                        for chunk in response.iter_content(CHUNK):
                            spool.write(chunk)
                        spool.seek(0)
                        extract_zip(spool, staging)
                if etag:
                    (staging / ETAG_FILE).write_text(etag + "\n")
                _swap_in(staging, target)
            except BaseException:
                shutil.rmtree(staging, ignore_errors=True)
                raise
        return Bundle(target, etag, changed=True)

    def json(self, region: int, layout: str | None = None, **filters: Any) -> dict[str, Any]:
        """Ansible's dynamic-inventory JSON of the selection."""
        response = self._open(region, "json", layout, None, filters)
        return dict(response.json())


def extract_tar(stream: IO[bytes], directory: Path) -> None:
    """Extract a gzipped tar read from ``stream`` (no seeking) into ``directory``; BundleError
    at the first entry that is not a plain file or directory inside it."""
    try:
        with tarfile.open(fileobj=stream, mode="r|gz") as archive:
            for member in archive:
                _check_name(member.name)
                if not (member.isfile() or member.isdir()):
                    raise BundleError(f"bundle entry {member.name!r} is not a plain file or "
                                      "directory")
                archive.extract(member, directory, filter="data")
    except tarfile.FilterError as exc:
        raise BundleError(f"bundle entry refused: {exc}") from exc
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise BundleError(f"the bundle is not a readable .tgz: {exc}") from exc


def extract_zip(handle: IO[bytes], directory: Path) -> None:
    """Extract a zip archive into ``directory``, keeping each file's mode bits (a secret stays
    0600); BundleError for an entry outside it or a link."""
    try:
        with zipfile.ZipFile(handle) as archive:
            entries = archive.infolist()
            for entry in entries:
                _check_name(entry.filename)
                mode = entry.external_attr >> 16
                if mode and not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
                    raise BundleError(f"bundle entry {entry.filename!r} is not a plain file "
                                      "or directory")
            for entry in entries:
                written = Path(archive.extract(entry, directory))
                mode = (entry.external_attr >> 16) & 0o777
                if mode and not entry.is_dir():
                    written.chmod(mode & ~0o022)
    except zipfile.BadZipFile as exc:
        raise BundleError(f"the bundle is not a readable .zip: {exc}") from exc


def _check_name(name: str) -> None:
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts or "\\" in name or name.startswith("/") \
            or (path.parts and ":" in path.parts[0]):
        raise BundleError(f"bundle entry {name!r} would land outside the directory")


def _read_etag(directory: Path) -> str | None:
    try:
        return (directory / ETAG_FILE).read_text().strip() or None
    except OSError:
        return None


def _swap_in(staging: Path, target: Path) -> None:
    """Put ``staging`` where ``target`` is, removing what was there."""
    if target.exists() or target.is_symlink():
        if not target.is_dir() or target.is_symlink():
            raise BundleError(f"{target} exists and is not a directory")
        old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old.", dir=target.parent))
        os.replace(target, old / "previous")
        os.replace(staging, target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(staging, target)


@contextlib.contextmanager
def _temporary_beside(target: Path) -> Iterator[tuple[IO[bytes], Path]]:
    target.parent.mkdir(parents=True, exist_ok=True)
    descriptor, name = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    handle = os.fdopen(descriptor, "wb")
    try:
        yield handle, Path(name)
    finally:
        handle.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name)
