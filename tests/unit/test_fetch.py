"""Fetching referenced files (craton.sources.fetch.Fetcher) from real sources built in tmp_path:
bare git repositories, an HTTP server on 127.0.0.1 and plain files. Each fetch returns the
file's bytes and a pin (the commit for git, the content's sha256 otherwise); what cannot be
read is a FetchFailed (502), what may not be read is a FetchRefused (422).

The servers run on loopback, which the server's own requests may reach only when an operator
allows it: these tests' settings allow 127.0.0.0/8 in [sources] allowed_networks, except where
a test shows what is refused without it (tests/unit/test_fetch_policy.py). File sources are
read as tenant TENANT, from its own directory <data_dir>/sources/<TENANT> (the default root).

The GitRepo and WebServer helpers are also used by tests/functional/test_reference_vars.py.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import http.server
import os
import re
import socket
import ssl
import subprocess
import threading
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from craton.config import Settings, SourcesSettings
from craton.sources.fetch import Fetcher, FetchFailed, FetchRefused, source_kind
from tests.conftest import make_settings

TENANT = 7
LOOPBACK = ("127.0.0.0/8",)

# --- real sources --------------------------------------------------------------------------------

GIT_ENV = {"GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1",
           "GIT_TERMINAL_PROMPT": "0"}
GIT = ["git", "-c", "user.email=ops@example.com", "-c", "user.name=Ops",
       "-c", "commit.gpgsign=false", "-c", "tag.gpgsign=false"]


def git(*args: str, cwd: Path | None = None) -> str:
    done = subprocess.run([*GIT, *args], cwd=cwd, capture_output=True, text=True, timeout=60,
                          env={**os.environ, **GIT_ENV})
    assert done.returncode == 0, (args, done.stderr)
    return done.stdout.strip()


class GitRepo:
    """A bare repository (what Craton reads, through ``url``) and a working clone that commits
    and pushes to it."""

    def __init__(self, bare: Path) -> None:
        self.bare = bare
        self.work = bare.with_name(bare.name.removesuffix(".git") + "-work")
        bare.parent.mkdir(parents=True, exist_ok=True)
        git("init", "--quiet", "--bare", "--initial-branch=main", str(bare))
        git("clone", "--quiet", str(bare), str(self.work))
        git("symbolic-ref", "HEAD", "refs/heads/main", cwd=self.work)

    @property
    def url(self) -> str:
        return f"file://{self.bare}"

    def commit(self, files: dict[str, str | bytes], branch: str = "main",
               message: str = "change") -> str:
        """Write ``files`` on ``branch`` (created from the current commit when new), commit,
        push; returns the new commit's full sha."""
        current = git("symbolic-ref", "--short", "HEAD", cwd=self.work)
        if branch != current:
            known = git("branch", "--list", branch, cwd=self.work)
            git("checkout", "--quiet", *([] if known else ["-b"]), branch, cwd=self.work)
        for name, content in files.items():
            target = self.work / name
            target.parent.mkdir(parents=True, exist_ok=True)
            data = content.encode() if isinstance(content, str) else content
            target.write_bytes(data)
        git("add", "--all", cwd=self.work)
        git("commit", "--quiet", "-m", message, cwd=self.work)
        git("push", "--quiet", "origin", branch, cwd=self.work)
        return git("rev-parse", "HEAD", cwd=self.work)

    def tag(self, name: str, commit: str, *, annotated: bool) -> None:
        git("tag", *(["-a", "-m", f"release {name}"] if annotated else []), name, commit,
            cwd=self.work)
        git("push", "--quiet", "origin", f"refs/tags/{name}", cwd=self.work)


class WebServer:
    """A real HTTP server on 127.0.0.1 (in a thread) serving ``files`` by path and the files of
    ``directories`` below their URL prefix (a bare git repository, served so, is one git reads
    over "dumb" HTTP), plus paths that misbehave: ``/status/<code>``, ``/slow`` (answers after
    10 s), ``/trickle`` (one byte every 0.2 s for 6 s), ``/big?bytes=N``, ``/redirect?to=<url>``
    ``/not-http`` (answers something that is not HTTP) and ``/truncated`` (promises twice the
    bytes it sends); with ``moved_to`` set, everything else redirects there. ``requests``
    records the Host header and path of each request it got."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0,
                 tls: ssl.SSLContext | None = None) -> None:
        self.files: dict[str, bytes] = {}
        self.directories: dict[str, Path] = {}
        self.requests: list[tuple[str, str]] = []
        self.moved_to: str | None = None
        self.stopping = threading.Event()
        self.scheme = "https" if tls else "http"
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                server.handle(self)

        self.httpd = http.server.ThreadingHTTPServer((host, port), Handler)
        if tls is not None:
            self.httpd.socket = tls.wrap_socket(self.httpd.socket, server_side=True)
        self.httpd.daemon_threads = True
        self.httpd.block_on_close = False
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def port(self) -> int:
        return self.httpd.server_address[1]

    def url(self, path: str, host: str | None = None) -> str:
        return f"{self.scheme}://{host or self.httpd.server_address[0]}:{self.port}{path}"

    def close(self) -> None:
        self.stopping.set()
        self.httpd.shutdown()
        self.httpd.server_close()

    def handle(self, request: http.server.BaseHTTPRequestHandler) -> None:
        parts = urllib.parse.urlsplit(request.path)
        query = dict(urllib.parse.parse_qsl(parts.query))
        path = parts.path
        self.requests.append((request.headers.get("Host", ""), path))
        try:
            if path in self.files:
                self._answer(request, 200, self.files[path])
            elif (served := self._in_directory(path)) is not None:
                self._answer(request, 200, served.read_bytes())
            elif path.startswith("/status/"):
                request.send_error(int(path.removeprefix("/status/")))
            elif path == "/slow":
                self.stopping.wait(10)
                self._answer(request, 200, b"late: true\n")
            elif path == "/trickle":
                request.send_response(200)
                request.send_header("Connection", "close")
                request.end_headers()
                for _ in range(30):
                    if self.stopping.wait(0.2):
                        break
                    request.wfile.write(b"#")
                    request.wfile.flush()
            elif path == "/big":
                self._answer(request, 200, b"x" * int(query["bytes"]),
                             length=query.get("length", "yes") == "yes")
            elif self.moved_to is not None:
                request.send_response(301)
                request.send_header("Location", self.moved_to + request.path)
                request.send_header("Content-Length", "0")
                request.end_headers()
            elif path == "/redirect":
                request.send_response(302)
                request.send_header("Location", query["to"])
                request.send_header("Content-Length", "0")
                request.end_headers()
            elif path == "/not-http":
                request.wfile.write(b"SSH-2.0-OpenSSH_9.6\r\n")
                request.close_connection = True
            elif path == "/truncated":
                body = b"first_half: 1\n"
                request.send_response(200)
                request.send_header("Content-Length", str(2 * len(body)))
                request.end_headers()
                request.wfile.write(body)
                request.close_connection = True
            else:
                request.send_error(404)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up, as it should have

    def _in_directory(self, path: str) -> Path | None:
        for prefix, directory in self.directories.items():
            if path.startswith(prefix + "/"):
                candidate = (directory / path.removeprefix(prefix + "/")).resolve()
                if directory.resolve() in candidate.parents and candidate.is_file():
                    return candidate
        return None

    @staticmethod
    def _answer(request: http.server.BaseHTTPRequestHandler, status: int, body: bytes, *,
                length: bool = True) -> None:
        request.send_response(status)
        if length:
            request.send_header("Content-Length", str(len(body)))
        else:
            request.send_header("Connection", "close")
            request.close_connection = True
        request.end_headers()
        request.wfile.write(body)


@contextlib.contextmanager
def web_server(host: str = "127.0.0.1", port: int = 0,
               tls: ssl.SSLContext | None = None) -> Iterator[WebServer]:
    server = WebServer(host, port, tls)
    try:
        yield server
    finally:
        server.close()


def closed_port() -> int:
    """A local TCP port nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def silent_server() -> Iterator[int]:
    """A local TCP port that accepts connections and never says a word."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    try:
        yield listener.getsockname()[1]
    finally:
        listener.close()


def with_sources(settings: Settings, **sources: Any) -> Settings:
    return dataclasses.replace(settings, sources=dataclasses.replace(settings.sources, **sources))


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --- fixtures -------------------------------------------------------------------------------------

def fetcher_for(settings: Settings, **sources: Any) -> Fetcher:
    """A fetcher reading for tenant TENANT with ``settings`` and these [sources] options."""
    return Fetcher(with_sources(settings, **sources)).for_tenant(TENANT)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings whose fetches may reach loopback, where the test servers listen."""
    return with_sources(make_settings(tmp_path), allowed_networks=LOOPBACK)


@pytest.fixture
def sources(settings: Settings) -> Path:
    """The directory tenant TENANT's file:// sources may read by default:
    <data_dir>/sources/<TENANT>."""
    root = settings.data_dir / "sources" / str(TENANT)
    root.mkdir(parents=True)
    return root


@pytest.fixture
def fetcher(settings: Settings, sources: Path) -> Fetcher:
    return fetcher_for(settings)


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One repository with a little history, shared by the read-only git tests:
    c1 on main (tags v1 annotated, v1-light lightweight), c2 on main (HEAD), c3 on dev."""
    root = tmp_path_factory.mktemp("history")
    repo = GitRepo(root / "vars.git")
    c1 = repo.commit({"group_vars/web.yml": "release: c1\n", "README": "vars\n"})
    repo.tag("v1", c1, annotated=True)
    repo.tag("v1-light", c1, annotated=False)
    c2 = repo.commit({"group_vars/web.yml": "release: c2\n"})
    c3 = repo.commit({"group_vars/web.yml": "release: c3\n"}, branch="dev")
    return {"root": root, "repo": repo, "c1": c1, "c2": c2, "c3": c3}


@pytest.fixture
def history_fetcher(settings: Settings, history: dict[str, Any]) -> Fetcher:
    return Fetcher(with_sources(settings, file_roots=(str(history["root"]),)))


@pytest.fixture(scope="module")
def web() -> Iterator[WebServer]:
    with web_server() as server:
        yield server


# --- git ------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("ref", "commit"), [
    (None, "c2"),
    ("HEAD", "c2"),
    ("main", "c2"),
    ("dev", "c3"),
    ("refs/heads/dev", "c3"),
    ("v1", "c1"),
    ("v1-light", "c1"),
    ("refs/tags/v1-light", "c1"),
    ("refs/tags/v1", "c1"),
    ("full:c1", "c1"),
    ("full:c3", "c3"),
    ("short:c1", "c1"),
    ("short:c3", "c3"),
])
def test_git_ref_reads_the_file_at_the_commit_it_names(
        history_fetcher: Fetcher, history: dict[str, Any], ref: str | None,
        commit: str) -> None:
    """A git reference's ref may be a branch, a tag (annotated or lightweight, short or full
    name), a full or short commit id, or nothing (HEAD): the file is read at the commit it
    names, and the pin is "commit:" and that commit's full sha."""
    if ref and ref.startswith(("full:", "short:")):
        form, _, name = ref.partition(":")
        ref = history[name] if form == "full" else history[name][:8]
    fetched = history_fetcher.fetch(history["repo"].url, ref, "group_vars/web.yml")
    assert fetched.content == f"release: {commit}\n".encode()
    assert fetched.pin == f"commit:{history[commit]}"


def test_a_new_commit_on_the_branch_changes_the_pin(fetcher: Fetcher, sources: Path) -> None:
    """Fetching a branch again after someone pushed to it gives the new content under a new
    pin (the cached mirror does not hide the push); a tag keeps naming its old commit, and the
    new commit can be named by its sha straight away."""
    repo = GitRepo(sources / "vars.git")
    first = repo.commit({"web.yml": "version: 1\n"})
    repo.tag("stable", first, annotated=True)
    before = fetcher.fetch(repo.url, "main", "web.yml")
    assert (before.content, before.pin) == (b"version: 1\n", f"commit:{first}")
    assert fetcher.fetch(repo.url, "main", "web.yml") == before

    second = repo.commit({"web.yml": "version: 2\n"})
    after = fetcher.fetch(repo.url, "main", "web.yml")
    assert (after.content, after.pin) == (b"version: 2\n", f"commit:{second}")
    assert fetcher.fetch(repo.url, "stable", "web.yml") == before
    third = repo.commit({"web.yml": "version: 3\n"})
    assert fetcher.fetch(repo.url, third[:9], "web.yml").content == b"version: 3\n"
    assert fetcher.fetch(repo.url, None, "web.yml").pin == f"commit:{third}"


@pytest.mark.parametrize("ref", ["no-such-branch", "v9.9", "deadbeefdeadbeef",
                                 "0123456789abcdef0123456789abcdef01234567"])
def test_unknown_ref_fails_naming_it(history_fetcher: Fetcher, history: dict[str, Any],
                                     ref: str) -> None:
    """A branch, tag or commit the repository does not have is a FetchFailed (502) whose
    message names it."""
    with pytest.raises(FetchFailed) as caught:
        history_fetcher.fetch(history["repo"].url, ref, "group_vars/web.yml")
    assert caught.value.status == 502
    assert ref in caught.value.message


@pytest.mark.parametrize("path", ["group_vars/db.yml", "group_vars"],
                         ids=["missing", "a directory"])
def test_a_path_that_is_no_file_of_the_commit_fails_naming_it(
        history_fetcher: Fetcher, history: dict[str, Any], path: str) -> None:
    """A path the commit does not have, or that is a directory in its tree, is a FetchFailed
    (502) naming the path — not an unexpected error."""
    with pytest.raises(FetchFailed) as caught:
        history_fetcher.fetch(history["repo"].url, "main", path)
    assert caught.value.status == 502
    assert path in caught.value.message


def test_git_without_a_path_is_refused(history_fetcher: Fetcher,
                                       history: dict[str, Any]) -> None:
    """A git reference must say which file of the tree to read."""
    with pytest.raises(FetchRefused) as caught:
        history_fetcher.fetch(history["repo"].url, "main", None)
    assert caught.value.status == 422
    assert "path" in caught.value.message


def test_git_file_larger_than_max_bytes_is_refused(settings: Settings, sources: Path) -> None:
    """A file of exactly [sources] max_bytes is read; one byte more is a FetchRefused (422)
    that names the file and the limit."""
    repo = GitRepo(sources / "vars.git")
    repo.commit({"fits.yml": b"a: " + b"x" * 97, "large.yml": b"a: " + b"x" * 98})
    fetcher = fetcher_for(settings, max_bytes=100)
    assert len(fetcher.fetch(repo.url, "main", "fits.yml").content) == 100
    with pytest.raises(FetchRefused) as caught:
        fetcher.fetch(repo.url, "main", "large.yml")
    assert caught.value.status == 422
    assert "large.yml" in caught.value.message and "max_bytes" in caught.value.message


def test_git_file_url_outside_the_roots_is_refused(fetcher: Fetcher, settings: Settings,
                                                  sources: Path, tmp_path: Path) -> None:
    """A file:// repository outside [sources] file_roots — directly or through a symlink
    inside a root — is a FetchRefused (422), and git never touches it."""
    outside = GitRepo(tmp_path / "elsewhere" / "vars.git")
    outside.commit({"web.yml": "secret: 1\n"})
    (sources / "link.git").symlink_to(outside.bare)
    for url in (outside.url, f"file://{sources}/link.git",
                f"file://{sources}/../../elsewhere/vars.git"):
        with pytest.raises(FetchRefused) as caught:
            fetcher.fetch(url, "main", "web.yml")
        assert caught.value.status == 422
        assert "file_roots" in caught.value.message
    assert not (settings.cache_dir / "git").exists()


def test_git_roots_can_be_configured(settings: Settings, tmp_path: Path) -> None:
    """With [sources] file_roots set, repositories below those directories are read and the
    default <data_dir>/sources/<tenant> no longer is."""
    allowed = GitRepo(tmp_path / "repos" / "vars.git")
    commit = allowed.commit({"web.yml": "a: 1\n"})
    default = GitRepo(settings.data_dir / "sources" / str(TENANT) / "vars.git")
    default.commit({"web.yml": "a: 2\n"})
    fetcher = Fetcher(with_sources(settings, file_roots=(str(tmp_path / "repos"),)))
    assert fetcher.fetch(allowed.url, "main", "web.yml").pin == f"commit:{commit}"
    with pytest.raises(FetchRefused):
        fetcher.fetch(default.url, "main", "web.yml")


def test_unreachable_git_server_fails(fetcher: Fetcher) -> None:
    """A git:// server nobody answers at is a FetchFailed (502) naming the URL."""
    url = f"git://127.0.0.1:{closed_port()}/vars.git"
    with pytest.raises(FetchFailed) as caught:
        fetcher.fetch(url, "main", "web.yml")
    assert caught.value.status == 502
    assert url in caught.value.message


def test_silent_git_server_fails_within_git_timeout(settings: Settings) -> None:
    """A git server that accepts the connection and never answers is a FetchFailed after
    about [sources] git_timeout seconds, not a hung request."""
    fetcher = fetcher_for(settings, git_timeout=1)
    with silent_server() as port:
        started = time.monotonic()
        with pytest.raises(FetchFailed) as caught:
            fetcher.fetch(f"git://127.0.0.1:{port}/vars.git", "main", "web.yml")
        elapsed = time.monotonic() - started
    assert elapsed < 5
    assert caught.value.message == f"git ls-remote git://127.0.0.1:{port}/vars.git: " \
        "could not connect"


# --- http -----------------------------------------------------------------------------------------

def test_http_content_and_sha256_pin(fetcher: Fetcher, web: WebServer) -> None:
    """An http(s) reference is one GET: the body, pinned as "sha256:" and its digest; a
    redirect to another http URL is followed."""
    body = b"ntp_server: 10.0.0.1\n"
    web.files["/vars/web.yml"] = body
    fetched = fetcher.fetch(web.url("/vars/web.yml"), None, None)
    assert (fetched.content, fetched.pin) == (body, f"sha256:{sha256(body)}")
    moved = web.url("/redirect?" + urllib.parse.urlencode({"to": web.url("/vars/web.yml")}))
    assert fetcher.fetch(moved, None, None) == fetched


@pytest.mark.parametrize("status", [404, 500])
def test_http_error_status_fails_naming_it(fetcher: Fetcher, web: WebServer,
                                           status: int) -> None:
    """A 404 or 500 answer is a FetchFailed (502) naming the status and the URL."""
    url = web.url(f"/status/{status}")
    with pytest.raises(FetchFailed) as caught:
        fetcher.fetch(url, None, None)
    assert caught.value.status == 502
    assert str(status) in caught.value.message and url in caught.value.message


@pytest.mark.parametrize("path", ["/slow", "/trickle"])
def test_slow_http_server_fails_within_http_timeout(settings: Settings, web: WebServer,
                                                    path: str) -> None:
    """A server that is slow to answer, or that sends its answer a byte at a time, is a
    FetchFailed after about [sources] http_timeout seconds ("Seconds an http(s) fetch may
    take"), not a request held open as long as the server likes."""
    fetcher = fetcher_for(settings, http_timeout=1)
    started = time.monotonic()
    with pytest.raises(FetchFailed) as caught:
        fetcher.fetch(web.url(path), None, None)
    elapsed = time.monotonic() - started
    assert elapsed < 3, f"gave up after {elapsed:.1f}s"
    assert caught.value.status == 502


@pytest.mark.parametrize("length", ["yes", "no"])
def test_http_body_larger_than_max_bytes_is_refused(settings: Settings, web: WebServer,
                                                    length: str) -> None:
    """A body of exactly max_bytes is read; a larger one is a FetchRefused (422) naming the
    limit, whether or not the server announced its length."""
    fetcher = fetcher_for(settings, max_bytes=1000)
    fits = fetcher.fetch(web.url(f"/big?bytes=1000&length={length}"), None, None)
    assert len(fits.content) == 1000
    with pytest.raises(FetchRefused) as caught:
        fetcher.fetch(web.url(f"/big?bytes=5000&length={length}"), None, None)
    assert caught.value.status == 422
    assert "max_bytes" in caught.value.message


def test_http_redirect_to_a_file_url_is_refused(fetcher: Fetcher, web: WebServer,
                                                sources: Path) -> None:
    """A web server cannot make Craton read a local file by redirecting to a file:// URL
    (even one below the file roots): the fetch fails saying the redirect was refused, and the
    file's content goes nowhere."""
    (sources / "local.yml").write_text("local_secret: hunter2\n")
    url = web.url("/redirect?" + urllib.parse.urlencode({"to": f"file://{sources}/local.yml"}))
    with pytest.raises(FetchFailed) as caught:
        fetcher.fetch(url, None, None)
    assert caught.value.status == 502
    assert re.search(r"refused|not allowed", caught.value.message)
    assert f"file://{sources}/local.yml" in caught.value.message
    assert "hunter2" not in caught.value.message


def test_http_answer_that_is_not_http_fails(fetcher: Fetcher, web: WebServer) -> None:
    """A URL pointing at something that does not speak HTTP (say an SSH port) is a
    FetchFailed (502) naming the URL, not an unexpected error."""
    url = web.url("/not-http")
    with pytest.raises(FetchFailed) as caught:
        fetcher.fetch(url, None, None)
    assert url in caught.value.message


def test_http_truncated_body_fails(fetcher: Fetcher, web: WebServer) -> None:
    """A connection that drops before the promised Content-Length arrived is a FetchFailed:
    half a file is never used (nor pinned) as if it were the whole one."""
    with pytest.raises(FetchFailed):
        fetcher.fetch(web.url("/truncated"), None, None)


def test_unreachable_http_server_fails(fetcher: Fetcher) -> None:
    """Nobody listening is a FetchFailed (502) naming the URL."""
    url = f"http://127.0.0.1:{closed_port()}/web.yml"
    with pytest.raises(FetchFailed) as caught:
        fetcher.fetch(url, None, None)
    assert caught.value.status == 502 and url in caught.value.message


# --- local files ----------------------------------------------------------------------------------

def test_file_below_a_root_is_read(fetcher: Fetcher, sources: Path) -> None:
    """A file:/// (or file://localhost/) URL below <data_dir>/sources is read and pinned by
    its sha256; so is a symlink that stays inside the root."""
    body = b"ntp_server: 10.0.0.1\n"
    (sources / "team").mkdir()
    (sources / "team" / "web.yml").write_bytes(body)
    (sources / "alias.yml").symlink_to(sources / "team" / "web.yml")
    expected = (body, f"sha256:{sha256(body)}")
    for url in (f"file://{sources}/team/web.yml", f"file://localhost{sources}/team/web.yml",
                f"file://{sources}/alias.yml"):
        fetched = fetcher.fetch(url, None, None)
        assert (fetched.content, fetched.pin) == expected, url


def test_file_outside_the_roots_is_refused(fetcher: Fetcher, sources: Path,
                                           tmp_path: Path) -> None:
    """Files outside the roots are a FetchRefused (422) naming [sources] file_roots: an
    absolute path elsewhere, a '..' (also percent-encoded) climbing out, a sibling directory
    whose name merely starts like the root's."""
    (tmp_path / "outside.yml").write_text("secret: 1\n")
    sibling = sources.with_name("sources-evil")
    sibling.mkdir()
    (sibling / "web.yml").write_text("secret: 1\n")
    for url in (f"file://{tmp_path}/outside.yml", f"file://{sources}/../../outside.yml",
                f"file://{sources}/%2e%2e/%2e%2e/outside.yml", f"file://{sibling}/web.yml",
                "file:///etc/hostname"):
        with pytest.raises(FetchRefused) as caught:
            fetcher.fetch(url, None, None)
        assert caught.value.status == 422, url
        assert "file_roots" in caught.value.message


def test_symlink_escaping_the_root_is_refused(fetcher: Fetcher, sources: Path,
                                              tmp_path: Path) -> None:
    """A symlink inside the root pointing outside it (to a file, or as a directory on the
    way) is a FetchRefused: symlinks are resolved before the check."""
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "web.yml").write_text("secret: 1\n")
    (sources / "web.yml").symlink_to(tmp_path / "outside" / "web.yml")
    (sources / "dir").symlink_to(tmp_path / "outside")
    for url in (f"file://{sources}/web.yml", f"file://{sources}/dir/web.yml"):
        with pytest.raises(FetchRefused):
            fetcher.fetch(url, None, None)


def test_missing_file_or_directory_fails(fetcher: Fetcher, sources: Path) -> None:
    """A file that does not exist, or a directory, below a root is a FetchFailed (502)
    naming the path."""
    (sources / "team").mkdir()
    for url, named in ((f"file://{sources}/nope.yml", "nope.yml"),
                       (f"file://{sources}/team", "team")):
        with pytest.raises(FetchFailed) as caught:
            fetcher.fetch(url, None, None)
        assert caught.value.status == 502
        assert named in caught.value.message


def test_file_larger_than_max_bytes_is_refused(settings: Settings, sources: Path) -> None:
    """A local file over [sources] max_bytes is a FetchRefused (422) naming the limit."""
    (sources / "fits.yml").write_bytes(b"x" * 64)
    (sources / "large.yml").write_bytes(b"x" * 65)
    fetcher = fetcher_for(settings, max_bytes=64)
    assert fetcher.fetch(f"file://{sources}/fits.yml", None, None).content == b"x" * 64
    with pytest.raises(FetchRefused) as caught:
        fetcher.fetch(f"file://{sources}/large.yml", None, None)
    assert caught.value.status == 422 and "max_bytes" in caught.value.message


# --- pinned content -------------------------------------------------------------------------------

def test_pinned_returns_cached_content_by_its_sha256_pin(settings: Settings, sources: Path,
                                                         web: WebServer) -> None:
    """What an http or file fetch returned can be had again by its pin after the source
    changed — also from another Fetcher sharing the cache; pins of other kinds, unknown
    digests and malformed pins give None."""
    fetcher = fetcher_for(settings)
    web.files["/pinned.yml"] = b"version: 1\n"
    (sources / "local.yml").write_bytes(b"local: 1\n")
    from_http = fetcher.fetch(web.url("/pinned.yml"), None, None)
    from_file = fetcher.fetch(f"file://{sources}/local.yml", None, None)
    web.files["/pinned.yml"] = b"version: 2\n"
    (sources / "local.yml").write_bytes(b"local: 2\n")
    assert fetcher.fetch(web.url("/pinned.yml"), None, None).content == b"version: 2\n"

    again = fetcher_for(settings)
    assert again.pinned(from_http.pin) == b"version: 1\n"
    assert again.pinned(from_file.pin) == b"local: 1\n"
    repo = GitRepo(sources / "vars.git")
    commit = repo.commit({"web.yml": "a: 1\n"})
    assert again.pinned(again.fetch(repo.url, "main", "web.yml").pin) is None
    upper = sha256(b"version: 1\n").upper()
    for pin in (f"commit:{commit}", f"sha256:{sha256(b'never fetched')}", "sha256:../../x",
                f"sha256:{upper}", "", "sha256:"):
        assert again.pinned(pin) is None, pin


# --- kinds ----------------------------------------------------------------------------------------

@pytest.mark.parametrize(("url", "ref", "kind"), [
    ("git://git.example.com/ops/vars", None, "git"),
    ("git://git.example.com/ops/vars.git", "main", "git"),
    ("https://git.example.com/ops/vars.git", None, "git"),
    ("https://git.example.com/ops/vars.git/", None, "git"),
    ("https://git.example.com/ops/vars", "main", "git"),
    ("file:///srv/sources/vars.git", None, "git"),
    ("file:///srv/sources/vars", "v1.0", "git"),
    ("http://vars.example.com/web.yml", None, "http"),
    ("https://vars.example.com/web.yml?x=1", None, "http"),
    ("HTTPS://vars.example.com/web.yml", None, "http"),
    ("file:///srv/sources/web.yml", None, "file"),
    ("file://localhost/srv/sources/web.yml", None, "file"),
])
def test_source_kind(url: str, ref: str | None, kind: str) -> None:
    """git for git:// URLs, for any URL with a ref and for URLs ending in .git; otherwise
    http for http(s) and file for file URLs."""
    assert source_kind(url, ref) == kind


def test_sources_settings_defaults(tmp_path: Path) -> None:
    """The documented defaults: each tenant's own <data_dir>/sources/<tenant id>, no network
    beyond public addresses, 10 s http, 120 s git, 1 MiB."""
    defaults = SourcesSettings()
    assert (defaults.file_roots, defaults.allowed_networks, defaults.http_timeout,
            defaults.git_timeout, defaults.max_bytes) == ((), (), 10, 120, 1024 * 1024)
    settings = make_settings(tmp_path)
    assert settings.file_roots == (f"{settings.data_dir}/sources/{{tenant}}",)
