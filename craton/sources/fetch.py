"""Fetch a file from git, http(s) or the local file system, pinned to what was fetched.

- git: ``ref`` (branch, tag, commit; default HEAD) is resolved to a commit with ``git ls-remote``
  and the file is read at that commit from a bare mirror kept in the cache, so each commit is
  fetched once. ``file://`` repositories are local paths and follow the file rule below.
- http(s): one GET (following up to five redirects, each to http(s) only) with a timeout and a
  size limit.
- file: only below the directories ``[sources] file_roots`` allows for the tenant the fetch is
  for (symlinks resolved first): see :meth:`Fetcher.for_tenant`.

Every host a request goes to — http(s), git over http(s) or git:// — is resolved and each of
its addresses checked against :class:`craton.sources.addresses.AddressPolicy` before anything
is sent, and on every redirect; the request then goes to the checked address and nowhere else:

- http(s): urllib3 connects to the address itself, sending the URL's host as ``Host`` and
  checking the TLS certificate against that host name.
- git over http(s): git is told the address (``http.curloptResolve``) and follows no redirect
  (``http.followRedirects=false``), since it would resolve the new host itself.
- git://: git's own protocol cannot be told an address for a name, so git is given a URL with
  the checked address in place of the name. (A git daemon that serves different repositories by
  the host it is asked for, a rare set-up, then needs an http(s) URL.)

Failing to reach a host says only "could not connect", whether the connection was refused,
timed out, found no route or failed its TLS handshake, so that fetching cannot be used to map
which ports answer. No proxy from the environment is used: it would connect on our behalf to
whatever it resolves.

Every result carries its pin — ``commit:<sha>`` or ``sha256:<hex>`` — and http/file content is
also kept in the cache under its digest, so a pinned fetch can be repeated later. What the cache
holds is readable by Craton's user only (0600 files, 0700 directories).
"""

from __future__ import annotations

import collections
import contextlib
import copy
import dataclasses
import fcntl
import hashlib
import os
import re
import subprocess
import threading
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import urllib3

from craton.config import TENANT_PLACEHOLDER, Settings
from craton.errors import CratonError
from craton.files import PRIVATE_FILE, private_dir, write_private
from craton.sources.addresses import (
    Address,
    AddressNotAllowed,
    AddressPolicy,
    NameNotResolved,
    Resolver,
    literal_address,
)

HEX_SHA = re.compile(r"[0-9a-f]{7,40}")
GIT_ENV = {
    "GIT_TERMINAL_PROMPT": "0",
    "GIT_ALLOW_PROTOCOL": "file:git:http:https",
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": os.devnull,
}
DEFAULT_PORTS = {"http": 80, "https": 443, "git": 9418}
MAX_REDIRECTS = 5
RECENT_BYTES = 64 * 1024 * 1024
"""How much fetched content ``Fetcher.fetch_recent`` keeps, at most (oldest use goes first)."""
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
NETWORKS_HINT = ("the server's own requests reach loopback, private, link-local and its own "
                 "addresses only in networks an operator lists in [sources] allowed_networks")
PRIVATE_UMASK = 0o077
"""git runs with it, so mirrors in the cache are readable by Craton's user only."""


class FetchFailed(CratonError):
    """The source could not be read (unreachable, missing ref or file, too slow)."""

    status = 502


class FetchRefused(CratonError):
    """The source may not be read (outside the allowed roots or networks, too large)."""

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
    """Reads sources for one tenant (:meth:`for_tenant`) or, unscoped, only from what every
    tenant shares: file roots without ``{tenant}`` and the network as the policy allows."""

    def __init__(self, settings: Settings, *, resolver: Resolver | None = None) -> None:
        self.settings = settings
        self.sources = settings.sources
        self.limits = settings.limits
        """What the variables of a fetched reference may hold (craton.inventory.snapshot)."""
        self.cache = settings.cache_dir
        self.policy = AddressPolicy(settings.sources.allowed_networks, resolver=resolver)
        self.tenant_id: int | None = None
        self.roots = self._roots_for(None)
        self.clock = time.monotonic
        # Shared by the copies for_tenant makes; keyed by tenant, as what one may read
        # another may not.
        self._recent: collections.OrderedDict[tuple[Any, ...], tuple[float, Fetched]] = \
            collections.OrderedDict()
        self._recent_lock = threading.Lock()

    def for_tenant(self, tenant_id: int) -> Fetcher:
        """This fetcher reading for ``tenant_id`` — the tenant of the region a reference or a
        job belongs to, not the caller's (a cloud admin building a tenant's bundle reads what
        that tenant may): ``{tenant}`` in a file root becomes its id."""
        scoped = copy.copy(self)
        scoped.tenant_id = tenant_id
        scoped.roots = self._roots_for(tenant_id)
        return scoped

    def _roots_for(self, tenant_id: int | None) -> tuple[Path, ...]:
        roots = []
        for root in self.settings.file_roots:
            if TENANT_PLACEHOLDER in root:
                if tenant_id is None:
                    continue
                root = root.replace(TENANT_PLACEHOLDER, str(int(tenant_id)))
            roots.append(Path(root).expanduser().resolve())
        return tuple(roots)

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

    def fetch_recent(self, url: str, ref: str | None, path: str | None) -> Fetched:
        """:meth:`fetch`, or what it gave this tenant for the same source less than
        ``[sources] refresh_seconds`` ago (the same pin and content, so a bundle and its
        ETag agree)."""
        max_age = self.sources.refresh_seconds
        if max_age <= 0:
            return self.fetch(url, ref, path)
        key = (self.tenant_id, url, ref, path)
        now = self.clock()
        with self._recent_lock:
            found = self._recent.get(key)
            if found is not None and now - found[0] < max_age:
                self._recent.move_to_end(key)
                return found[1]
        fetched = self.fetch(url, ref, path)
        with self._recent_lock:
            self._recent[key] = (now, fetched)
            self._recent.move_to_end(key)
            held = sum(len(kept.content) for _, kept in self._recent.values())
            while held > RECENT_BYTES and len(self._recent) > 1:
                held -= len(self._recent.popitem(last=False)[1][1].content)
        return fetched

    def refusal(self, url: str) -> str | None:
        """Why ``url`` would not be fetched, as far as that is known without the network — a
        file outside this tenant's roots, a host that is a refused address or ``localhost`` —
        so that it is refused when it is stored. A host name is only checked when it is
        fetched, every time: what it resolves to can change."""
        parts = urllib.parse.urlsplit(url)
        try:
            if parts.scheme.lower() == "file":
                self.local_path(url)
            else:
                self._check_host(url)
        except FetchRefused as error:
            return error.message
        return None

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
        wanted = ref or "HEAD"
        what = f"git ls-remote {url}"
        options, remote = self._remote(url, what)
        listing = self._git_network([*options, "ls-remote", "--", remote], url=url, what=what)
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
        """A bare mirror of ``url`` in the cache holding ``commit`` (fetching when it does not).
        The URL is checked even when nothing needs fetching: the mirror is shared, the right
        to read it is not."""
        if urllib.parse.urlsplit(url).scheme.lower() == "file":
            self.local_path(url)
        else:
            self._check_host(url)
        mirror = self.cache / "git" / (hashlib.sha256(url.encode()).hexdigest()[:24] + ".git")
        with self._locked(mirror.with_suffix(".lock")):
            if not mirror.exists():
                private_dir(mirror.parent)
                what = f"git clone {url}"
                options, remote = self._remote(url, what)
                self._git_network([*options, "clone", "--mirror", "--quiet", "--", remote,
                                   str(mirror)], url=url, what=what)
            elif commit is None or not self._has_commit(mirror, commit):
                what = f"git fetch {url}"
                options, remote = self._remote(url, what)
                self._git_network([*options, "fetch", "--prune", "--quiet", remote,
                                   "+refs/*:refs/*"], url=url, cwd=mirror, what=what)
        return mirror

    def local_path(self, url: str) -> Path:
        """The file a file:// URL names, if it lies below a root this fetcher may read."""
        raw = urllib.parse.unquote(urllib.parse.urlsplit(url).path)
        resolved = Path(raw).resolve()
        if not any(resolved == root or root in resolved.parents for root in self.roots):
            raise FetchRefused(f"{raw} is outside the directories [sources] file_roots allows "
                               + ("this tenant" if self.tenant_id is not None else "every tenant"))
        return resolved

    def pinned(self, pin: str) -> bytes | None:
        """Content fetched earlier under ``sha256:<hex>``, if still cached."""
        kind, _, digest = pin.partition(":")
        blob = self.cache / "blobs" / digest
        if kind == "sha256" and re.fullmatch(r"[0-9a-f]{64}", digest) and blob.is_file():
            return blob.read_bytes()
        return None

    def git_env(self) -> dict[str, str]:
        """The environment git runs in: no prompts, no user config, no proxy, only safe
        transports."""
        return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(self.cache),
                **GIT_ENV}

    # --- addresses ------------------------------------------------------------------------

    def _check_host(self, url: str) -> None:
        """Refuse a URL whose host is, without asking DNS, an address the policy refuses."""
        host = urllib.parse.urlsplit(url).hostname
        problem = self.policy.host_problem(host) if host else None
        if problem is not None:
            raise FetchRefused(f"{problem}, which is not allowed ({NETWORKS_HINT})")

    def _addresses(self, what: str, host: str, port: int) -> list[Address]:
        """The checked addresses to connect to for ``host``. A refusal names the host, not
        what it resolved to (that is the operator's network, not the tenant's business); a
        name that does not resolve cannot be told from a host that does not answer."""
        try:
            return self.policy.resolve(host, port)
        except AddressNotAllowed:
            problem = self.policy.host_problem(host)
            reason = (f"{problem}, which is" if problem
                      else f"{host} resolves to an address that is")
            raise FetchRefused(f"{what}: {reason} not allowed ({NETWORKS_HINT})") from None
        except NameNotResolved:
            raise FetchFailed(f"{what}: could not connect") from None

    def _endpoint(self, url: str, what: str) -> tuple[str, str, int]:
        """(scheme, host, port) of a network URL."""
        parts = urllib.parse.urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in DEFAULT_PORTS or not parts.hostname:
            raise FetchFailed(f"{what}: not an http(s) or git URL with a host")
        try:
            port = parts.port or DEFAULT_PORTS[scheme]
        except ValueError:
            raise FetchFailed(f"{what}: invalid port") from None
        return scheme, parts.hostname, port

    # --- http -----------------------------------------------------------------------------

    def _fetch_http(self, url: str) -> bytes:
        """GET ``url``, following up to MAX_REDIRECTS redirects to http(s) URLs, each hop's
        host checked; all of it within http_timeout (not per socket read: a server trickling
        a byte at a time is cut off too)."""
        deadline = time.monotonic() + self.sources.http_timeout
        current = url
        for _ in range(MAX_REDIRECTS + 1):
            what = f"GET {url}" if current == url else f"GET {url} (redirected to {current})"
            with self._http_get(current, what, deadline) as response:
                if response.status in REDIRECT_STATUSES:
                    location = response.headers.get("Location")
                    if not location:
                        raise FetchFailed(f"{what} answered {response.status} without a "
                                          "Location")
                    target = urllib.parse.urljoin(current, location)
                    if urllib.parse.urlsplit(target).scheme.lower() not in ("http", "https"):
                        raise FetchFailed(f"{what}: redirect to {target} refused (only http "
                                          "and https redirects are followed)")
                    current = target
                    continue
                if not 200 <= response.status < 300:
                    raise FetchFailed(f"{what} answered {response.status} {response.reason}")
                return self._read_body(response, what, url, deadline)
        raise FetchFailed(f"GET {url}: more than {MAX_REDIRECTS} redirects")

    @contextlib.contextmanager
    def _http_get(self, url: str, what: str,
                  deadline: float) -> Iterator[urllib3.BaseHTTPResponse]:
        """The response (headers read, body not) of a GET sent to one of the checked
        addresses of ``url``'s host."""
        scheme, host, port = self._endpoint(url, what)
        if scheme == "git":
            raise FetchFailed(f"{what}: not an http(s) URL")
        addresses = self._addresses(what, host, port)
        name = _ascii_host(host, what)
        parts = urllib.parse.urlsplit(url)
        authority = (f"[{name}]" if ":" in name else name) + (
            f":{parts.port}" if parts.port else "")
        target = urllib.parse.urlunsplit(("", "", parts.path or "/", parts.query, ""))
        headers = {"Host": authority, "User-Agent": "craton", "Accept-Encoding": "identity"}
        for address in addresses:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            pool = _pool(scheme, address, port, name, remaining)
            try:
                response = pool.urlopen("GET", target, headers=headers, retries=False,
                                        redirect=False, assert_same_host=False,
                                        preload_content=False, decode_content=False)
            except (urllib3.exceptions.HTTPError, OSError):
                pool.close()
                continue
            try:
                yield response
            finally:
                response.close()
                pool.close()
            return
        raise FetchFailed(f"{what}: could not connect")

    def _read_body(self, response: urllib3.BaseHTTPResponse, what: str, url: str,
                   deadline: float) -> bytes:
        """The body, refusing short and oversized ones."""
        limit, timeout = self.sources.max_bytes, self.sources.http_timeout
        parts: list[bytes] = []
        size = 0
        try:
            while size <= limit:
                if time.monotonic() > deadline:
                    raise FetchFailed(f"{what}: not complete within {timeout}s")
                part = response.read1(min(65536, limit + 1 - size), decode_content=False)
                if not part:
                    break
                parts.append(part)
                size += len(part)
        except urllib3.exceptions.ReadTimeoutError:
            raise FetchFailed(f"{what}: not complete within {timeout}s") from None
        except (urllib3.exceptions.HTTPError, OSError):
            raise FetchFailed(f"{what}: the connection closed before the whole body "
                              "arrived") from None
        if size > limit:
            raise FetchRefused(f"{url} is larger than {limit} bytes ([sources] max_bytes)")
        return b"".join(parts)

    # --- files ----------------------------------------------------------------------------

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
            private_dir(blob.parent)
            partial = blob.with_suffix(f".{os.getpid()}.part")
            write_private(partial, content)
            partial.replace(blob)
        return Fetched(content=content, pin=f"sha256:{digest}")

    # --- git ------------------------------------------------------------------------------

    def _remote(self, url: str, what: str) -> tuple[list[str], str]:
        """The git options and the URL that reach ``url``'s repository only where allowed:
        a file below this tenant's roots, or a host at the addresses just checked."""
        if urllib.parse.urlsplit(url).scheme.lower() == "file":
            return [], self.local_path(url).as_uri()
        scheme, host, port = self._endpoint(url, what)
        addresses = self._addresses(what, host, port)
        parts = urllib.parse.urlsplit(url)
        if scheme == "git":
            netloc = f"{_bracketed(addresses[0])}:{port}"
            return [], urllib.parse.urlunsplit(("git", netloc, parts.path, parts.query, ""))
        options = ["-c", "http.followRedirects=false"]
        if literal_address(host) is None:  # a name: curl must not resolve it itself
            name = _ascii_host(host, what)
            pinned = ",".join(_bracketed(address) for address in addresses)
            options += ["-c", f"http.curloptResolve={name}:{port}:{pinned}"]
        return options, url

    def _has_commit(self, mirror: Path, commit: str) -> bool:
        return subprocess.run(["git", "cat-file", "-e", f"{commit}^{{commit}}"], cwd=mirror,
                              env=self.git_env(), capture_output=True,
                              umask=PRIVATE_UMASK).returncode == 0

    def _git_network(self, args: list[str], *, url: str, what: str,
                     cwd: Path | None = None) -> str:
        """A git command that reads the repository at ``url``: any failure to reach a remote
        one is the same message (a local one says what went wrong)."""
        if urllib.parse.urlsplit(url).scheme.lower() == "file":
            return self._git(args, what=what, cwd=cwd)
        try:
            done = subprocess.run(["git", *args], cwd=cwd, env=self.git_env(),
                                  capture_output=True, text=True, umask=PRIVATE_UMASK,
                                  timeout=self.sources.git_timeout)
        except subprocess.TimeoutExpired:
            raise FetchFailed(f"{what}: could not connect") from None
        if done.returncode != 0:
            raise FetchFailed(f"{what}: could not connect")
        return done.stdout

    def _git(self, args: list[str], *, what: str, cwd: Path | None = None,
             missing: str | None = None) -> str:
        try:
            done = subprocess.run(["git", *args], cwd=cwd, env=self.git_env(), capture_output=True,
                                  text=True, umask=PRIVATE_UMASK,
                                  timeout=self.sources.git_timeout)
        except subprocess.TimeoutExpired:
            raise FetchFailed(f"{what}: no answer within {self.sources.git_timeout}s") from None
        if done.returncode != 0:
            detail = (done.stderr.strip().splitlines() or ["failed"])[-1]
            raise FetchFailed(missing or f"{what}: {detail}")
        return done.stdout

    def _git_bytes(self, args: list[str], *, what: str, cwd: Path) -> bytes:
        try:
            done = subprocess.run(["git", *args], cwd=cwd, env=self.git_env(), capture_output=True,
                                  umask=PRIVATE_UMASK, timeout=self.sources.git_timeout)
        except subprocess.TimeoutExpired:
            raise FetchFailed(f"{what}: no answer within {self.sources.git_timeout}s") from None
        if done.returncode != 0:
            raise FetchFailed(f"{what}: git {args[0]} failed")
        return done.stdout

    @staticmethod
    @contextlib.contextmanager
    def _locked(lock: Path) -> Iterator[None]:
        private_dir(lock.parent)
        fd = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_APPEND, PRIVATE_FILE)
        with os.fdopen(fd, "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def _pool(scheme: str, address: Address, port: int, name: str,
          timeout: float) -> urllib3.HTTPConnectionPool:
    """A one-connection pool to ``address`` itself; for https, the certificate is checked
    against ``name`` (and ``name`` sent as SNI), as if the name had been connected to."""
    limits = urllib3.Timeout(connect=timeout, read=timeout)
    if scheme == "https":
        return urllib3.HTTPSConnectionPool(str(address), port, timeout=limits, retries=False,
                                           maxsize=1, cert_reqs="CERT_REQUIRED",
                                           server_hostname=name.strip("[]"),
                                           assert_hostname=name.strip("[]"))
    return urllib3.HTTPConnectionPool(str(address), port, timeout=limits, retries=False,
                                      maxsize=1)


def _bracketed(address: Address) -> str:
    return f"[{address}]" if address.version == 6 else str(address)


def _ascii_host(host: str, what: str) -> str:
    """The host as it goes on the wire (IDNA for names in other scripts)."""
    if literal_address(host) is not None:
        return host
    try:
        return host.encode("idna").decode("ascii")
    except UnicodeError:
        raise FetchFailed(f"{what}: {host!r} is not a valid host name") from None
