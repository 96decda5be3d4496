"""Fetch a file from git, http(s) or the local file system, pinned to what was fetched.

- git: ``ref`` (branch, tag, commit; default HEAD) is resolved to a commit with ``git ls-remote``
  and the file is read at that commit from a bare mirror kept in the cache, so each commit is
  fetched once. ``file://`` repositories are local paths and follow the file rule below.
- http(s): one GET with a timeout and a size limit; redirects only to http(s).
- file: only below the directories ``[sources] file_roots`` allows (symlinks resolved first).

Every result carries its pin — ``commit:<sha>`` or ``sha256:<hex>`` — and http/file content is
also kept in the cache under its digest, so a pinned fetch can be repeated later.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import http.client
import os
import re
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from craton.config import Settings
from craton.errors import CratonError

HEX_SHA = re.compile(r"[0-9a-f]{7,40}")
GIT_ENV = {
    "GIT_TERMINAL_PROMPT": "0",
    "GIT_ALLOW_PROTOCOL": "file:git:http:https",
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": os.devnull,
}


class FetchFailed(CratonError):
    """The source could not be read (unreachable, missing ref or file, too slow)."""

    status = 502


class FetchRefused(CratonError):
    """The source may not be read (outside the allowed roots, too large)."""

    status = 422


@dataclasses.dataclass(frozen=True)
class Fetched:
    content: bytes
    pin: str
    """``commit:<sha>`` for git, ``sha256:<hex>`` otherwise."""


def source_kind(url: str, ref: str | None) -> str:
    """git for git:// URLs, for any URL with a ref and for paths ending in .git; else the
    scheme (http, https → http; file)."""
    scheme = urllib.parse.urlsplit(url).scheme
    if scheme == "git" or ref is not None or url.rstrip("/").endswith(".git"):
        return "git"
    return "http" if scheme in ("http", "https") else "file"


class Fetcher:
    def __init__(self, settings: Settings) -> None:
        self.sources = settings.sources
        self.limits = settings.limits
        """What the variables of a fetched reference may hold (craton.inventory.snapshot)."""
        self.cache = settings.cache_dir
        roots = settings.sources.file_roots or (str(settings.data_dir / "sources"),)
        self.roots = tuple(Path(root).expanduser().resolve() for root in roots)

    # --- public -------------------------------------------------------------------------

    def fetch(self, url: str, ref: str | None, path: str | None) -> Fetched:
        kind = source_kind(url, ref)
        if kind == "git":
            if not path:
                raise FetchRefused("a git source needs the path of the file inside the tree")
            return self.fetch_git(url, ref, path)
        if kind == "http":
            return self._remember(self._fetch_http(url))
        return self._remember(self._read_file(self.local_path(url)))

    def fetch_git(self, url: str, ref: str | None, path: str) -> Fetched:
        commit = self.resolve_commit(url, ref)
        mirror = self.mirror(url, commit)
        spec = f"{commit}:{path}"
        missing = f"no file {path!r} at commit {commit[:12]}"
        kind = self._git(["cat-file", "-t", spec], cwd=mirror, what=spec, missing=missing)
        if kind.strip() != "blob":
            raise FetchFailed(f"{path!r} at commit {commit[:12]} is a {kind.strip()}, not a file")
        size = int(self._git(["cat-file", "-s", spec], cwd=mirror, what=spec, missing=missing))
        if size > self.sources.max_bytes:
            raise FetchRefused(f"{path} is {size} bytes; the limit is "
                               f"{self.sources.max_bytes} ([sources] max_bytes)")
        content = self._git_bytes(["cat-file", "blob", spec], cwd=mirror, what=spec)
        return Fetched(content=content, pin=f"commit:{commit}")

    def resolve_commit(self, url: str, ref: str | None) -> str:
        """The commit ``ref`` names in the repository at ``url`` (HEAD by default)."""
        self._check_git_url(url)
        wanted = ref or "HEAD"
        listing = self._git(["ls-remote", "--", url], what=f"git ls-remote {url}")
        refs: dict[str, str] = {}
        for line in listing.splitlines():
            sha, _, name = line.partition("\t")
            refs[name] = sha
        for name in (f"refs/tags/{wanted}^{{}}", f"refs/tags/{wanted}", f"refs/heads/{wanted}",
                     f"{wanted}^{{}}", wanted):
            if name in refs:
                return refs[name]
        if HEX_SHA.fullmatch(wanted):
            mirror = self.mirror(url, None)
            return self._git(["rev-parse", "--verify", "--quiet", f"{wanted}^{{commit}}"],
                             cwd=mirror, what=f"commit {wanted}",
                             missing=f"no commit {wanted!r} in {url}").strip()
        raise FetchFailed(f"no branch, tag or commit {wanted!r} in {url}")

    def mirror(self, url: str, commit: str | None) -> Path:
        """A bare mirror of ``url`` in the cache holding ``commit`` (fetching when it does not)."""
        mirror = self.cache / "git" / (hashlib.sha256(url.encode()).hexdigest()[:24] + ".git")
        with self._locked(mirror.with_suffix(".lock")):
            if not mirror.exists():
                mirror.parent.mkdir(parents=True, exist_ok=True)
                self._git(["clone", "--mirror", "--quiet", "--", url, str(mirror)],
                          what=f"git clone {url}")
            elif commit is None or not self._has_commit(mirror, commit):
                self._git(["fetch", "--prune", "--quiet", "origin"], cwd=mirror,
                          what=f"git fetch {url}")
        return mirror

    def local_path(self, url: str) -> Path:
        """The file a file:// URL names, if it lies below an allowed root."""
        raw = urllib.parse.unquote(urllib.parse.urlsplit(url).path)
        resolved = Path(raw).resolve()
        if not any(resolved == root or root in resolved.parents for root in self.roots):
            raise FetchRefused(f"{raw} is outside the directories [sources] file_roots allows")
        return resolved

    def pinned(self, pin: str) -> bytes | None:
        """Content fetched earlier under ``sha256:<hex>``, if still cached."""
        kind, _, digest = pin.partition(":")
        blob = self.cache / "blobs" / digest
        if kind == "sha256" and re.fullmatch(r"[0-9a-f]{64}", digest) and blob.is_file():
            return blob.read_bytes()
        return None

    # --- internals ------------------------------------------------------------------------

    def _fetch_http(self, url: str) -> bytes:
        """One GET, all of it within http_timeout (not per socket read: a server trickling a
        byte at a time is cut off too), refusing short and oversized bodies."""
        request = urllib.request.Request(url, headers={"User-Agent": "craton"})
        opener = urllib.request.build_opener(_HttpOnlyRedirects())
        limit, timeout = self.sources.max_bytes, self.sources.http_timeout
        deadline = time.monotonic() + timeout
        try:
            with opener.open(request, timeout=timeout) as response:
                parts: list[bytes] = []
                size = 0
                while size <= limit:
                    if time.monotonic() > deadline:
                        raise FetchFailed(f"GET {url}: not complete within {timeout}s")
                    part = response.read1(min(65536, limit + 1 - size))
                    if not part:
                        break
                    parts.append(part)
                    size += len(part)
                if size <= limit and response.length:
                    raise FetchFailed(f"GET {url}: the connection closed "
                                      f"{response.length} bytes short of the announced length")
        except urllib.error.HTTPError as error:
            raise FetchFailed(f"GET {url} answered {error.code} {error.reason}") from None
        except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as error:
            reason = getattr(error, "reason", None) or error.__class__.__name__
            raise FetchFailed(f"GET {url} failed: {reason}") from None
        if size > limit:
            raise FetchRefused(f"{url} is larger than {limit} bytes ([sources] max_bytes)")
        return b"".join(parts)

    def _read_file(self, path: Path) -> bytes:
        try:
            if path.exists() and not path.is_file() and not path.is_dir():
                raise FetchFailed(f"{path} is not a regular file")
            size = path.stat().st_size
            if size > self.sources.max_bytes:
                raise FetchRefused(f"{path} is {size} bytes; the limit is "
                                   f"{self.sources.max_bytes} ([sources] max_bytes)")
            return path.read_bytes()
        except FileNotFoundError:
            raise FetchFailed(f"no file {path}") from None
        except IsADirectoryError:
            raise FetchFailed(f"{path} is a directory") from None
        except PermissionError:
            raise FetchFailed(f"{path} is not readable") from None

    def _remember(self, content: bytes) -> Fetched:
        digest = hashlib.sha256(content).hexdigest()
        blob = self.cache / "blobs" / digest
        if not blob.exists():
            blob.parent.mkdir(parents=True, exist_ok=True)
            partial = blob.with_suffix(f".{os.getpid()}.part")
            partial.write_bytes(content)
            partial.replace(blob)
        return Fetched(content=content, pin=f"sha256:{digest}")

    def _check_git_url(self, url: str) -> None:
        if urllib.parse.urlsplit(url).scheme == "file":
            self.local_path(url)

    def _has_commit(self, mirror: Path, commit: str) -> bool:
        return subprocess.run(["git", "cat-file", "-e", f"{commit}^{{commit}}"], cwd=mirror,
                              env=self.git_env(), capture_output=True).returncode == 0

    def _git(self, args: list[str], *, what: str, cwd: Path | None = None,
             missing: str | None = None) -> str:
        try:
            done = subprocess.run(["git", *args], cwd=cwd, env=self.git_env(), capture_output=True,
                                  text=True, timeout=self.sources.git_timeout)
        except subprocess.TimeoutExpired:
            raise FetchFailed(f"{what}: no answer within {self.sources.git_timeout}s") from None
        if done.returncode != 0:
            detail = (done.stderr.strip().splitlines() or ["failed"])[-1]
            raise FetchFailed(missing or f"{what}: {detail}")
        return done.stdout

    def _git_bytes(self, args: list[str], *, what: str, cwd: Path) -> bytes:
        try:
            done = subprocess.run(["git", *args], cwd=cwd, env=self.git_env(), capture_output=True,
                                  timeout=self.sources.git_timeout)
        except subprocess.TimeoutExpired:
            raise FetchFailed(f"{what}: no answer within {self.sources.git_timeout}s") from None
        if done.returncode != 0:
            raise FetchFailed(f"{what}: git {args[0]} failed")
        return done.stdout

    def git_env(self) -> dict[str, str]:
        """The environment git runs in: no prompts, no user config, only safe transports."""
        return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(self.cache),
                **GIT_ENV}

    @staticmethod
    @contextlib.contextmanager
    def _locked(lock: Path) -> Iterator[None]:
        lock.parent.mkdir(parents=True, exist_ok=True)
        with open(lock, "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


class _HttpOnlyRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req: urllib.request.Request, fp: object, code: int, msg: str,
                         headers: object, newurl: str) -> urllib.request.Request | None:
        if urllib.parse.urlsplit(newurl).scheme not in ("http", "https"):
            raise urllib.error.URLError(f"redirect to {newurl} refused")
        return super().redirect_request(req, fp, code, msg, headers, newurl)  # type: ignore[arg-type]
