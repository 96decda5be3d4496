"""What a name may be: names become Ansible names and parts of archive paths, so anything that
could escape a directory, break a YAML/INI line or impersonate another name is refused."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from craton.errors import InvalidInput
from craton.names import (
    MAX_NAME,
    check,
    fqdn_problem,
    group_name_problem,
    host_name_problem,
    normalize_ip,
    slug_problem,
    ssh_user_problem,
    tenant_name_problem,
    variable_key_problem,
)

Rule = Callable[[object], str | None]

HOSTILE = [
    pytest.param("..", id="dotdot"),
    pytest.param(".", id="dot"),
    pytest.param("a/../b", id="traversal"),
    pytest.param("a/b", id="slash"),
    pytest.param("/abs", id="absolute"),
    pytest.param("a\\b", id="backslash"),
    pytest.param("..\\..\\x", id="windows-traversal"),
    pytest.param("a\x00b", id="nul"),
    pytest.param("a\nb", id="newline"),
    pytest.param("node\n", id="trailing-newline"),
    pytest.param("a\rb", id="carriage-return"),
    pytest.param("a\tb", id="tab"),
    pytest.param("a b", id="space"),
    pytest.param(" a", id="leading-space"),
    pytest.param("a" * (MAX_NAME + 1), id="201-chars"),
    pytest.param("", id="empty"),
    pytest.param("h\u043est", id="cyrillic-o"),
    pytest.param("\uff48\uff4f\uff53\uff54", id="fullwidth"),
    pytest.param("host\u200b", id="zero-width-space"),
    pytest.param("\ufb01le", id="fi-ligature"),
    pytest.param("node\u0663", id="arabic-indic-digit"),
    pytest.param("a\u2024b", id="one-dot-leader"),
    pytest.param("a\u2215b", id="division-slash"),
    pytest.param("caf\u00e9", id="accented"),
    pytest.param("a:b", id="colon"),
    pytest.param("a*", id="glob"),
    pytest.param("$(id)", id="shell"),
    pytest.param("[all]", id="ini-section"),
]
NOT_STRINGS = [None, 1, 1.5, b"node", ["node"], {"name": "node"}]


@pytest.mark.parametrize("rule", [host_name_problem, slug_problem, group_name_problem],
                         ids=["host", "slug", "group"])
@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_names_are_refused(rule: Rule, name: str) -> None:
    problem = rule(name)
    assert isinstance(problem, str) and problem


@pytest.mark.parametrize("rule", [host_name_problem, slug_problem, group_name_problem,
                                  variable_key_problem, ssh_user_problem, fqdn_problem,
                                  tenant_name_problem],
                         ids=["host", "slug", "group", "key", "ssh-user", "fqdn", "tenant"])
@pytest.mark.parametrize("value", NOT_STRINGS, ids=repr)
def test_non_strings_are_refused(rule: Rule, value: object) -> None:
    assert rule(value) is not None


@pytest.mark.parametrize("name", [
    "a", "A", "_", "7", "node-0001", "node_1", "web.example.com", "10.0.0.1", "a-b.c_d",
    "x" * MAX_NAME, "_leading", "trailing_",
])
@pytest.mark.parametrize("rule", [host_name_problem, slug_problem], ids=["host", "slug"])
def test_good_host_and_slug_names(rule: Rule, name: str) -> None:
    assert rule(name) is None


@pytest.mark.parametrize("name", ["-a", "a-", ".a", "a.", "a..b", "a...b"])
@pytest.mark.parametrize("rule", [host_name_problem, slug_problem], ids=["host", "slug"])
def test_host_and_slug_edges(rule: Rule, name: str) -> None:
    """Names start and end with a letter, digit or '_' and never hold '..'."""
    assert rule(name) is not None


def test_dotdot_inside_a_name_is_named_in_the_reason() -> None:
    assert "'..'" in (host_name_problem("a..b") or "")


def test_length_limit_is_named_in_the_reason() -> None:
    assert str(MAX_NAME) in (host_name_problem("a" * (MAX_NAME + 1)) or "")


@pytest.mark.parametrize("name", ["compute", "_x", "A1", "gpu_nodes", "All", "g" * MAX_NAME])
def test_good_group_names(name: str) -> None:
    assert group_name_problem(name) is None


@pytest.mark.parametrize("name", ["1abc", "a-b", "a.b", "10.0.0.1", "g" * (MAX_NAME + 1)])
def test_group_names_ansible_would_rewrite_are_refused(name: str) -> None:
    assert group_name_problem(name) is not None


@pytest.mark.parametrize("name", ["all", "ungrouped"])
def test_ansible_reserved_groups_are_refused(name: str) -> None:
    problem = group_name_problem(name)
    assert problem is not None and "reserved" in problem


@pytest.mark.parametrize("key", ["a", "_", "role", "ansible_host", "A_1", "k" * 255])
def test_good_variable_keys(key: str) -> None:
    assert variable_key_problem(key) is None


@pytest.mark.parametrize("key", [
    "", "1a", "a-b", "a.b", "a b", "a\n", "a\x00", "k\u043ey", "caf\u00e9", "$x", "a[0]",
    "k" * 256, "class", "import", "lambda", "None", "True", "False",
])
def test_bad_variable_keys(key: str) -> None:
    assert variable_key_problem(key) is not None


def test_keyword_keys_say_why() -> None:
    assert "keyword" in (variable_key_problem("class") or "")


@pytest.mark.parametrize("user", ["root", "ubuntu", "svc_ansible", "a.b-c_d", "_x", "u" * 64])
def test_good_ssh_users(user: str) -> None:
    assert ssh_user_problem(user) is None


@pytest.mark.parametrize("user", [
    "", "u" * 65, "-oProxyCommand=sh", "-l", ".hidden", "root\n", "ro ot", "root;id",
    "$(id)", "a/b", "a@b", "r\u043eot", "root\x00",
])
def test_bad_ssh_users(user: str) -> None:
    """A user name reaches ssh's command line: it may never look like an option or a shell
    word."""
    assert ssh_user_problem(user) is not None


LABEL_63 = "a" * 63
NAME_253 = ".".join([LABEL_63, LABEL_63, LABEL_63, "a" * 61])


@pytest.mark.parametrize("fqdn", [
    "a", "example.com", "example.com.", "a-b.example", "xn--bcher-kva.example", "1.2.3.4",
    f"{LABEL_63}.example", NAME_253, NAME_253 + ".",
])
def test_good_fqdns(fqdn: str) -> None:
    assert len(NAME_253) == 253
    assert fqdn_problem(fqdn) is None


@pytest.mark.parametrize("fqdn", [
    "", ".", "a..b", ".example.com", "example.com..", "-a.com", "a-.com", "a_b.com",
    f"{LABEL_63}a.example", NAME_253 + "a", " example.com", "exa mple.com", "ex\x00.com",
    "\u00e9xample.com", "example.com\n", "a/b.com",
])
def test_bad_fqdns(fqdn: str) -> None:
    assert fqdn_problem(fqdn) is not None


@pytest.mark.parametrize("name", ["acme", "Acme Corp.", "Société Générale", "a" * 255])
def test_good_tenant_names(name: str) -> None:
    assert tenant_name_problem(name) is None


@pytest.mark.parametrize("name", ["", "   ", "a\nb", "a\x00b", "a\x7fb", "a" * 256])
def test_bad_tenant_names(name: str) -> None:
    assert tenant_name_problem(name) is not None


@pytest.mark.parametrize(("raw", "expected"), [
    ("10.0.0.1", "10.0.0.1"),
    (" 10.0.0.1\n", "10.0.0.1"),
    ("2001:DB8:0:0:0:0:0:1", "2001:db8::1"),
    ("2001:db8::0:1", "2001:db8::1"),
    ("::1", "::1"),
    ("0.0.0.0", "0.0.0.0"),
])
def test_normalize_ip_gives_the_canonical_text(raw: str, expected: str) -> None:
    """Filters compare the canonical text, so 2001:DB8::0:1 finds a host stored as
    2001:db8::1."""
    assert normalize_ip(raw) == expected
    assert normalize_ip(normalize_ip(raw)) == expected


@pytest.mark.parametrize("raw", [
    "", "host", "10.0.0", "10.0.0.256", "010.0.0.1", "10.0.0.1/24", "1.2.3.4.5", "::g",
    "10.0.0.1 10.0.0.2", None, 167772161, b"10.0.0.1",
])
def test_normalize_ip_refuses_what_is_not_an_address(raw: object) -> None:
    with pytest.raises(ValueError, match="must be"):
        normalize_ip(raw)


@pytest.mark.parametrize("raw", [
    "fe80::1%" + "x" * 100,
    "fe80::1%\x00",
    "fe80::1%a b",
    "fe80::1%\x1b[31m",
])
def test_normalize_ip_never_returns_what_the_address_column_cannot_hold(raw: str) -> None:
    """hosts.ip_address is VARCHAR(45), the longest textual IP address: an IPv6 zone id of any
    length or content (NUL, spaces, escape sequences) must be refused, not stored."""
    try:
        normalized = normalize_ip(raw)
    except ValueError:
        return
    assert len(normalized) <= 45, normalized
    assert normalized.isprintable() and " " not in normalized, repr(normalized)


def test_check_raises_the_one_field_422() -> None:
    check("name", None)
    with pytest.raises(InvalidInput) as caught:
        check("hosts.3.name", host_name_problem("../etc"))
    assert caught.value.status == 422
    assert set(caught.value.fields) == {"hosts.3.name"}
    assert caught.value.message.startswith("hosts.3.name: ")
