"""What the server's own requests may reach, shown with real servers: HTTP(S) servers and git
repositories on loopback addresses (served over HTTP and by ``git daemon``), a port that refuses,
one that drops connections, one that never answers, and file trees of two tenants.

Without [sources] allowed_networks nothing on loopback is reached (nor any private, link-local or
own address); with it, exactly the networks it lists. Host names are checked after they are
resolved, on every redirect, and the request goes to the address that was checked. No DNS server
runs here, so the tests give names their addresses through the Fetcher's injectable resolver; the
system's own resolver cannot resolve them (.test names never do), so a request that arrives at
all went to the address Craton checked.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import re
import socket
import ssl
import stat
import urllib.parse
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from craton.config import Settings
from craton.jobs.playbooks import snapshot_directory
from craton.sources.fetch import MAX_REDIRECTS, Fetcher, FetchFailed, FetchRefused
from tests import services
from tests.conftest import make_settings
from tests.unit.test_fetch import (
    GitRepo,
    WebServer,
    closed_port,
    git,
    silent_server,
    web_server,
    with_sources,
)

OTHER_LOOPBACK = "127.0.0.3"
"""A second loopback address: where an attacker's name would point once "rebound"."""


# --- helpers ------------------------------------------------------------------------------------

class Resolver:
    """Answers for names no DNS here knows, recording each question."""

    def __init__(self, answers: dict[str, Sequence[Sequence[str]]]) -> None:
        self.answers = answers
        self.asked: list[str] = []

    def __call__(self, host: str, port: int) -> list[str]:
        self.asked.append(host)
        answers = self.answers[host]
        return list(answers[min(self.asked.count(host), len(answers)) - 1])


def fetcher(settings: Settings, resolver: Resolver | None = None, tenant: int = 1,
            **sources: Any) -> Fetcher:
    return Fetcher(with_sources(settings, **sources), resolver=resolver).for_tenant(tenant)


def redirect(server: WebServer, to: str) -> str:
    return server.url("/redirect?" + urllib.parse.urlencode({"to": to}))


@pytest.fixture
def web() -> Iterator[WebServer]:
    with web_server() as server:
        yield server


@contextlib.contextmanager
def dropping_port() -> Iterator[int]:
    """A loopback port whose connection queue is full: new connections are dropped unanswered,
    as a firewall that filters the port drops them."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    filler = socket.create_connection(listener.getsockname())
    try:
        yield listener.getsockname()[1]
    finally:
        filler.close()
        listener.close()


def certificate_authority(tmp_path: Path, names: Sequence[str]) -> tuple[Path, ssl.SSLContext]:
    """A CA of the test's own (its certificate in a PEM file) and a server TLS context whose
    certificate it signed for ``names``."""
    now = dt.datetime.now(dt.UTC)
    valid = {"not_valid_before": now - dt.timedelta(days=1),
             "not_valid_after": now + dt.timedelta(days=1)}
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Craton test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(valid["not_valid_before"]).not_valid_after(valid["not_valid_after"])
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
            .issuer_name(ca_name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(valid["not_valid_before"]).not_valid_after(valid["not_valid_after"])
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    ca_file = tmp_path / "ca.pem"
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    chain = tmp_path / "server.pem"
    chain.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                        serialization.PrivateFormat.PKCS8,
                                        serialization.NoEncryption())
                      + leaf.public_bytes(serialization.Encoding.PEM))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(chain)
    return ca_file, context


def assert_refused(error: FetchRefused, host: str) -> None:
    assert error.status == 422
    assert "not allowed" in error.message and "[sources] allowed_networks" in error.message
    assert host in error.message


# --- loopback and the allowed networks ----------------------------------------------------------

@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "127.1", "2130706433",
                                  "[::ffff:127.0.0.1]", "[::1]"])
def test_loopback_is_refused_unless_allowed(settings: Settings, web: WebServer,
                                            host: str) -> None:
    """Without [sources] allowed_networks, a URL at loopback — in any spelling — is refused
    (422) without a byte sent, naming the option; once 127.0.0.0/8 is allowed, it is fetched."""
    web.files["/vars.yml"] = b"secret: 1\n"
    url = web.url("/vars.yml", host=host)
    with pytest.raises(FetchRefused) as caught:
        fetcher(settings).fetch(url, None, None)
    assert_refused(caught.value, host.strip("[]"))
    assert fetcher(settings).refusal(url) is not None
    assert web.requests == []
    if host != "[::1]":  # the server listens on 127.0.0.1 only
        allowed = fetcher(settings, allowed_networks=("127.0.0.0/8",))
        assert allowed.fetch(url, None, None).content == b"secret: 1\n"
        assert allowed.refusal(url) is None


def test_a_name_resolving_to_loopback_is_refused_when_fetched(settings: Settings,
                                                              web: WebServer) -> None:
    """A name is accepted when stored (refusal() cannot tell without DNS) but refused when it
    is fetched and resolves to loopback — without saying what it resolved to."""
    web.files["/vars.yml"] = b"secret: 1\n"
    resolver = Resolver({"inside.test": [["127.0.0.1"]]})
    reader = fetcher(settings, resolver)
    url = web.url("/vars.yml", host="inside.test")
    assert reader.refusal(url) is None
    with pytest.raises(FetchRefused) as caught:
        reader.fetch(url, None, None)
    assert_refused(caught.value, "inside.test")
    assert "127.0.0.1" not in caught.value.message
    assert resolver.asked == ["inside.test"] and web.requests == []


def test_only_the_listed_network_is_allowed(settings: Settings) -> None:
    """allowed_networks 127.0.0.2/32 admits that address and not its neighbour."""
    with web_server(host="127.0.0.2") as allowed, web_server() as other:
        allowed.files["/a.yml"] = other.files["/a.yml"] = b"a: 1\n"
        reader = fetcher(settings, allowed_networks=("127.0.0.2/32",))
        assert reader.fetch(allowed.url("/a.yml"), None, None).content == b"a: 1\n"
        with pytest.raises(FetchRefused):
            reader.fetch(other.url("/a.yml"), None, None)
        assert other.requests == []


# --- redirects ------------------------------------------------------------------------------------

def test_a_redirect_to_loopback_is_refused(settings: Settings) -> None:
    """An allowed server cannot send Craton on to an address that is not allowed: each hop's
    host is checked before it is asked (a literal address, localhost, or a name)."""
    resolver = Resolver({"inside.test": [["127.0.0.1"]]})
    with web_server(host="127.0.0.2") as allowed, web_server() as inside:
        inside.files["/secret.yml"] = b"secret: 1\n"
        reader = fetcher(settings, resolver, allowed_networks=("127.0.0.2/32",))
        for target, host in ((inside.url("/secret.yml"), "127.0.0.1"),
                             (inside.url("/secret.yml", host="localhost"), "localhost"),
                             (inside.url("/secret.yml", host="inside.test"), "inside.test"),
                             (redirect(allowed, inside.url("/secret.yml")), "127.0.0.1")):
            with pytest.raises(FetchRefused) as caught:
                reader.fetch(redirect(allowed, target), None, None)
            assert_refused(caught.value, host)
            assert "redirected to" in caught.value.message
        assert inside.requests == []


def test_redirects_are_followed_up_to_the_limit(settings: Settings, web: WebServer) -> None:
    """Five redirects are followed; a sixth is a FetchFailed saying so."""
    web.files["/vars.yml"] = b"a: 1\n"
    reader = fetcher(settings, allowed_networks=("127.0.0.1/32",))
    url = web.url("/vars.yml")
    for _ in range(MAX_REDIRECTS):
        url = redirect(web, url)
    assert reader.fetch(url, None, None).content == b"a: 1\n"
    with pytest.raises(FetchFailed) as caught:
        reader.fetch(redirect(web, url), None, None)
    assert f"more than {MAX_REDIRECTS} redirects" in caught.value.message


# --- one message for every way of not getting through ---------------------------------------------

def test_unreachable_hosts_all_give_the_same_message(settings: Settings, tmp_path: Path) -> None:
    """A refused port, a port that drops connections, one that accepts and never answers, one
    that does not speak HTTP and a TLS handshake that fails all read "could not connect": a
    tenant cannot tell which ports are open. (Only allowed networks are ever tried at all.)"""
    reader = fetcher(settings, allowed_networks=("127.0.0.1/32",), http_timeout=1)
    _, tls = certificate_authority(tmp_path, ["vars.test"])
    messages = {}
    with dropping_port() as dropping, silent_server() as silent, \
            web_server(tls=tls) as untrusted, web_server() as plain:
        urls = {
            "refused": f"http://127.0.0.1:{closed_port()}/vars.yml",
            "dropped": f"http://127.0.0.1:{dropping}/vars.yml",
            "silent": f"http://127.0.0.1:{silent}/vars.yml",
            "not http": plain.url("/not-http"),
            "untrusted certificate": untrusted.url("/vars.yml"),
            "tls to a plain server": f"https://127.0.0.1:{plain.port}/vars.yml",
        }
        for case, url in urls.items():
            with pytest.raises(FetchFailed) as caught:
                reader.fetch(url, None, None)
            messages[case] = caught.value.message.replace(url, "<url>")
    assert messages == dict.fromkeys(urls, "GET <url>: could not connect")


def test_unreachable_git_servers_give_the_same_message(settings: Settings) -> None:
    """The same for git: a refused and a silent git:// port read alike."""
    reader = fetcher(settings, allowed_networks=("127.0.0.1/32",), git_timeout=1)
    with silent_server() as silent:
        messages = set()
        for port in (closed_port(), silent):
            url = f"git://127.0.0.1:{port}/vars.git"
            with pytest.raises(FetchFailed) as caught:
                reader.fetch(url, "main", "web.yml")
            messages.add(caught.value.message.replace(url, "<url>"))
    assert messages == {"git ls-remote <url>: could not connect"}


# --- the connection goes to the address that was checked ----------------------------------------

def test_http_connects_to_the_checked_address(settings: Settings) -> None:
    """DNS rebinding: the name answers 127.0.0.1 (allowed) when checked and 127.0.0.3 (not
    allowed, where an internal service listens on the same port) when asked again. The fetch
    asks once, connects to 127.0.0.1 sending the name as Host, and the internal service sees
    nothing."""
    with web_server() as checked, \
            web_server(host=OTHER_LOOPBACK, port=checked.port) as internal:
        checked.files["/vars.yml"] = b"public: 1\n"
        internal.files["/vars.yml"] = b"internal_secret: 1\n"
        resolver = Resolver({"vars.test": [["127.0.0.1"], [OTHER_LOOPBACK]]})
        reader = fetcher(settings, resolver, allowed_networks=("127.0.0.1/32",))

        fetched = reader.fetch(checked.url("/vars.yml", host="vars.test"), None, None)

        assert fetched.content == b"public: 1\n"
        assert resolver.asked == ["vars.test"]
        assert checked.requests == [(f"vars.test:{checked.port}", "/vars.yml")]
        assert internal.requests == []
        with pytest.raises(FetchRefused):  # asked again, the name now points inside
            reader.fetch(checked.url("/vars.yml", host="vars.test"), None, None)
        assert internal.requests == []


def test_tls_is_checked_against_the_name_while_connecting_to_the_address(
        settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """https to a name: the connection goes to the checked address, and the certificate must
    be valid for the name (here issued by a CA the test makes trusted through SSL_CERT_FILE):
    a certificate for another name, or none for the address, is "could not connect"."""
    ca_file, tls = certificate_authority(tmp_path, ["vars.test"])
    monkeypatch.setenv("SSL_CERT_FILE", str(ca_file))
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    resolver = Resolver({"vars.test": [["127.0.0.1"]], "other.test": [["127.0.0.1"]]})
    reader = fetcher(settings, resolver, allowed_networks=("127.0.0.1/32",))
    with web_server(tls=tls) as server:
        server.files["/vars.yml"] = b"tls: 1\n"
        assert reader.fetch(server.url("/vars.yml", host="vars.test"), None, None).content == \
            b"tls: 1\n"
        assert server.requests == [(f"vars.test:{server.port}", "/vars.yml")]
        for host in ("other.test", "127.0.0.1"):
            url = server.url("/vars.yml", host=host)
            with pytest.raises(FetchFailed) as caught:
                reader.fetch(url, None, None)
            assert caught.value.message == f"GET {url}: could not connect"


@pytest.fixture
def served_repos(tmp_path: Path) -> dict[str, GitRepo]:
    """Two bare repositories ready to be served over HTTP ("dumb" protocol) or git://: the one
    Craton should read and an internal one it must not."""
    repos = {}
    for name, value in (("public", "public: 1\n"), ("internal", "internal_secret: 1\n")):
        repo = GitRepo(tmp_path / name / "vars.git")
        repo.commit({"web.yml": value})
        git("update-server-info", cwd=repo.bare)
        repos[name] = repo
    return repos


def test_git_over_http_connects_to_the_checked_address(settings: Settings,
                                                       served_repos: dict[str, GitRepo]) -> None:
    """git over http to a name goes to the address Craton checked (git's own resolver is not
    asked: it could not resolve vars.test anyway) and follows no redirect."""
    with web_server() as public, web_server(host=OTHER_LOOPBACK, port=public.port) as internal:
        public.directories["/vars.git"] = served_repos["public"].bare
        internal.directories["/vars.git"] = served_repos["internal"].bare
        resolver = Resolver({"vars.test": [["127.0.0.1"]]})
        reader = fetcher(settings, resolver, allowed_networks=("127.0.0.1/32",))

        url = public.url("/vars.git", host="vars.test")
        fetched = reader.fetch(url, "main", "web.yml")

        assert fetched.content == b"public: 1\n"
        assert {host for host, _ in public.requests} == {f"vars.test:{public.port}"}
        assert internal.requests == []


def test_git_over_http_follows_no_redirect(settings: Settings,
                                           served_repos: dict[str, GitRepo]) -> None:
    """git would resolve a redirect's host itself, so it follows none: a repository that moved
    is not fetched, even where the move leads to an allowed server."""
    with web_server() as public, web_server() as moved:
        public.directories["/vars.git"] = served_repos["public"].bare
        moved.moved_to = public.url("")
        reader = fetcher(settings, allowed_networks=("127.0.0.1/32",))
        assert reader.fetch(public.url("/vars.git"), "main", "web.yml").content == \
            b"public: 1\n"
        public.requests.clear()
        url = moved.url("/vars.git")
        with pytest.raises(FetchFailed) as caught:
            reader.fetch(url, "main", "web.yml")
        assert caught.value.message == f"git ls-remote {url}: could not connect"
        assert moved.requests and public.requests == []


def test_git_protocol_connects_to_the_checked_address(settings: Settings, tmp_path: Path,
                                                      served_repos: dict[str, GitRepo]) -> None:
    """git:// to a name goes to the checked address (git is handed the address), not to where
    the name points when git would look it up; without the network allowed it is refused."""
    with services.git_daemon(tmp_path / "public") as port, \
            services.git_daemon(tmp_path / "internal", host=OTHER_LOOPBACK, port=port):
        resolver = Resolver({"vars.test": [["127.0.0.1"]]})
        url = f"git://vars.test:{port}/vars.git"
        reader = fetcher(settings, resolver, allowed_networks=("127.0.0.1/32",))
        assert reader.fetch(url, "main", "web.yml").content == b"public: 1\n"
        with pytest.raises(FetchRefused) as caught:
            fetcher(settings, resolver).fetch(url, "main", "web.yml")
        assert_refused(caught.value, "vars.test")


def test_proxies_from_the_environment_are_not_used(
        settings: Settings, web: WebServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """A proxy set in the environment would connect on Craton's behalf to whatever it
    resolves: it is ignored (the fetch still goes straight to the checked address)."""
    web.files["/vars.yml"] = b"a: 1\n"
    monkeypatch.setenv("http_proxy", f"http://127.0.0.1:{closed_port()}")
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{closed_port()}")
    reader = fetcher(settings, allowed_networks=("127.0.0.1/32",))
    assert reader.fetch(web.url("/vars.yml"), None, None).content == b"a: 1\n"


# --- file roots per tenant ------------------------------------------------------------------------

@pytest.fixture
def two_tenants(settings: Settings) -> dict[int, Path]:
    """The default roots of tenants 1 and 2, each with a variables file and a repository."""
    roots = {}
    for tenant in (1, 2):
        root = settings.data_dir / "sources" / str(tenant)
        root.mkdir(parents=True)
        (root / "vars.yml").write_text(f"tenant: {tenant}\n")
        GitRepo(root / "vars.git").commit({"web.yml": f"tenant: {tenant}\n"})
        roots[tenant] = root
    return roots


def test_a_tenant_reads_only_its_own_root(settings: Settings,
                                          two_tenants: dict[int, Path]) -> None:
    """With the default <data_dir>/sources/{tenant}, tenant 2 cannot read tenant 1's files or
    repositories (refused when stored and when fetched), and a fetcher scoped to no tenant
    reads neither."""
    base = Fetcher(settings)
    for tenant, root in two_tenants.items():
        mine = base.for_tenant(tenant)
        other = base.for_tenant(3 - tenant)
        for url, ref, path in ((f"file://{root}/vars.yml", None, None),
                               (f"file://{root}/vars.git", "main", "web.yml")):
            assert mine.fetch(url, ref, path).content == f"tenant: {tenant}\n".encode()
            assert mine.refusal(url) is None
            for stranger in (other, base):
                assert "file_roots" in (stranger.refusal(url) or "")
                with pytest.raises(FetchRefused) as caught:
                    stranger.fetch(url, ref, path)
                assert "file_roots" in caught.value.message


def test_a_root_without_the_placeholder_is_shared(settings: Settings, tmp_path: Path,
                                                  two_tenants: dict[int, Path]) -> None:
    """A root without {tenant} is every tenant's; {tenant} may sit anywhere in a root."""
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "common.yml").write_text("common: 1\n")
    nested = tmp_path / "tenants" / "2" / "vars"
    nested.mkdir(parents=True)
    (nested / "own.yml").write_text("own: 2\n")
    base = Fetcher(with_sources(settings, file_roots=(
        str(shared), str(tmp_path / "tenants" / "{tenant}" / "vars"))))
    for reader in (base, base.for_tenant(1), base.for_tenant(2)):
        assert reader.fetch(f"file://{shared}/common.yml", None, None).content == b"common: 1\n"
    assert base.for_tenant(2).fetch(f"file://{nested}/own.yml", None, None).content == \
        b"own: 2\n"
    with pytest.raises(FetchRefused):
        base.for_tenant(1).fetch(f"file://{nested}/own.yml", None, None)
    with pytest.raises(FetchRefused):  # the default root is not in force any more
        base.for_tenant(1).fetch(f"file://{two_tenants[1]}/vars.yml", None, None)


def test_a_cached_mirror_is_not_a_way_around_the_roots(settings: Settings,
                                                       two_tenants: dict[int, Path]) -> None:
    """Tenant 1's repository, once mirrored in the (shared) cache, is still refused to tenant
    2 — also through mirror(), which job checkouts use."""
    url = f"file://{two_tenants[1]}/vars.git"
    owner = Fetcher(settings).for_tenant(1)
    commit = owner.resolve_commit(url, "main")
    owner.mirror(url, commit)
    stranger = Fetcher(settings).for_tenant(2)
    with pytest.raises(FetchRefused):
        stranger.mirror(url, commit)
    with pytest.raises(FetchRefused):
        stranger.resolve_commit(url, "main")


# --- what the cache keeps is Craton's alone -----------------------------------------------------

def modes(top: Path) -> dict[str, int]:
    """The permission bits of ``top`` and everything below it, by path relative to it."""
    found = {".": stat.S_IMODE(top.stat().st_mode)}
    for directory, subdirs, files in os.walk(top):
        for name in subdirs + files:
            path = Path(directory) / name
            found[str(path.relative_to(top))] = stat.S_IMODE(path.lstat().st_mode)
    return found


def test_the_cache_is_readable_by_craton_only(settings: Settings, web: WebServer,
                                              two_tenants: dict[int, Path],
                                              tmp_path: Path) -> None:
    """Fetched copies — http and file content, git mirrors, snapshots of playbook directories
    (an executable one stays executable for its owner) — are 0600 (or stricter) in 0700
    directories, whatever the umask."""
    web.files["/vars.yml"] = b"a: 1\n"
    reader = fetcher(settings, allowed_networks=("127.0.0.1/32",))
    old_umask = os.umask(0o022)
    try:
        reader.fetch(web.url("/vars.yml"), None, None)
        reader.fetch(f"file://{two_tenants[1]}/vars.yml", None, None)
        reader.fetch(f"file://{two_tenants[1]}/vars.git", "main", "web.yml")
        playbooks = tmp_path / "playbooks"
        playbooks.mkdir()
        (playbooks / "site.yml").write_text("- hosts: all\n")
        (playbooks / "run.sh").write_text("#!/bin/sh\n")
        (playbooks / "run.sh").chmod(0o755)
        pin = snapshot_directory(playbooks, settings.cache_dir / "sources")
    finally:
        os.umask(old_umask)
    found = modes(settings.cache_dir)
    assert found["."] == 0o700
    assert found[f"sources/{pin}/run.sh"] == 0o700
    assert found[f"sources/{pin}/site.yml"] == 0o600
    too_open = {path: oct(mode) for path, mode in found.items() if mode & 0o077}
    assert too_open == {}
    directories = {path for path in found if (settings.cache_dir / path).is_dir()}
    assert {oct(found[path]) for path in directories} == {"0o700"}
    assert any(re.match(r"git/[0-9a-f]+\.git/objects/", path) for path in found)


def test_settings_default_to_no_allowed_network(tmp_path: Path) -> None:
    """The conftest settings (and the defaults) allow no network: loopback is refused."""
    reader = Fetcher(make_settings(tmp_path))
    assert reader.policy.allowed == ()
    assert reader.refusal("http://127.0.0.1:7780/v1/inventory/1.json") is not None
