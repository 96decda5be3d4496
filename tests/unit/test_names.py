"""What a name may be: names become Ansible names and parts of archive paths, so anything that
could escape a directory, break a YAML/INI line or impersonate another name is refused."""

from __future__ import annotations

import fnmatch
import json
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from craton.errors import InvalidInput
from craton.names import (
    MAX_NAME,
    RESERVED_VARIABLES,
    SENSITIVE_NAMES,
    check,
    fqdn_problem,
    group_name_problem,
    host_name_problem,
    is_sensitive_name,
    normalize_ip,
    slug_problem,
    ssh_user_problem,
    tagged_key_problem,
    tenant_name_problem,
    variable_key_form_problem,
    variable_key_problem,
    vars_file_clashes,
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
    pytest.param("\u00e9" * (MAX_NAME // 2 + 1), id="202-bytes"),
    pytest.param("", id="empty"),
    pytest.param("host\u200b", id="zero-width-space"),
    pytest.param("a\u202eb", id="right-to-left-override"),
    pytest.param("cafe\u0301", id="not-nfc"),
    pytest.param(".hidden", id="leading-dot"),
    pytest.param("a:b", id="colon"),
    pytest.param("a*", id="glob"),
    pytest.param("a?", id="glob-one"),
    pytest.param("[all]", id="ini-section"),
    pytest.param("h[1:3]", id="range"),
    pytest.param("a,b", id="comma"),
    pytest.param("!a", id="exclusion"),
    pytest.param("&a", id="intersection"),
    pytest.param("~a", id="regex"),
    pytest.param("@a", id="limit-file"),
]
NOT_STRINGS = [None, 1, 1.5, b"node", ["node"], {"name": "node"}]

ANSIBLE_ACCEPTS = [
    "nova-api", "neutron-server", "ceph-osd", "web.example.com", "10.0.0.1", "1st", "7",
    "caf\u00e9", "h\u043est", "\uff48\uff4f\uff53\uff54", "\ufb01le", "node\u0663", "a\u2024b",
    "\u8ba1\u7b97", "_x", "All", "x" * MAX_NAME, "a-", "a.", "$(id)", "a=b", "a#b", "a'b",
    "true", "null", "1e3", "localhost",
]
"""Names Ansible keeps exactly as written (test_names_ansible_keeps checks it with Ansible)."""


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
def test_good_slugs(name: str) -> None:
    assert slug_problem(name) is None


@pytest.mark.parametrize("name", ["-a", "a-", ".a", "a.", "a..b", "a...b", "caf\u00e9"])
def test_slug_edges(name: str) -> None:
    """Craton's own names (regions, secrets, references) start and end with a letter, digit or
    '_', are ASCII and never hold '..'."""
    assert slug_problem(name) is not None


@pytest.mark.parametrize("rule", [host_name_problem, group_name_problem], ids=["host", "group"])
@pytest.mark.parametrize("name", ANSIBLE_ACCEPTS, ids=ascii)
def test_names_ansible_accepts_are_accepted(rule: Rule, name: str) -> None:
    """kolla-ansible's group names, dots, leading digits, unicode: Ansible takes them all."""
    assert rule(name) is None


def test_ipv6_addresses_may_name_hosts_but_not_groups() -> None:
    assert host_name_problem("2001:db8::1") is None
    assert host_name_problem("fe80::1") is None
    assert group_name_problem("2001:db8::1") is not None
    assert host_name_problem("h:22") is not None


def test_dotdot_inside_a_name_is_named_in_the_reason() -> None:
    assert "'..'" in (host_name_problem("a..b") or "")


def test_length_limit_is_named_in_the_reason() -> None:
    assert str(MAX_NAME) in (host_name_problem("a" * (MAX_NAME + 1)) or "")


@pytest.mark.parametrize("name", ["all", "ungrouped", "_meta"])
def test_ansible_reserved_groups_are_refused(name: str) -> None:
    problem = group_name_problem(name)
    assert problem is not None and "reserved" in problem


@pytest.mark.parametrize("name", ["all", "ungrouped"])
def test_implicit_group_names_cannot_name_hosts(name: str) -> None:
    assert "implicit groups" in (host_name_problem(name) or "")


def test_meta_may_name_a_host() -> None:
    """``_meta`` is a key of the JSON document, where groups are; a host of that name is
    listed under its groups and in ``_meta.hostvars``, and Ansible reads it."""
    assert host_name_problem("_meta") is None


def _ansible_reads(names: list[str]) -> tuple[set[str], set[str]]:
    """(hosts, groups) Ansible's YAML inventory plugin makes of one group per name holding one
    host per name (prefixed h-/g- so the two never meet)."""
    from ansible.inventory.manager import InventoryManager
    from ansible.parsing.dataloader import DataLoader

    lines = ["all:", "  children:"]
    for name in names:
        lines += [f"    {json.dumps('g-' + name)}:", "      hosts:",
                  f"        {json.dumps('h-' + name)}:"]
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch, "hosts.yml")
        path.write_text("\n".join(lines) + "\n")
        inventory = InventoryManager(loader=DataLoader(), sources=[str(path)])
        return set(inventory.hosts), set(inventory.groups) - {"all", "ungrouped"}


def test_names_ansible_keeps() -> None:
    """What the rules accept, Ansible's own inventory loader keeps exactly as written."""
    hosts, groups = _ansible_reads(ANSIBLE_ACCEPTS)
    assert hosts == {"h-" + name for name in ANSIBLE_ACCEPTS}
    assert groups == {"g-" + name for name in ANSIBLE_ACCEPTS}


@pytest.mark.parametrize("name", ["h:22", "h[1:3]", "h[a:c]"])
def test_names_ansible_misreads(name: str) -> None:
    """The control: names the rules refuse as misread, Ansible does misread (a port, a range)."""
    hosts, _ = _ansible_reads([name])
    assert hosts != {"h-" + name}
    assert host_name_problem(name) is not None


@pytest.mark.parametrize(("new", "existing", "clash"), [
    (["h0.json"], ["h0"], {"h0.json": "h0"}),
    (["h0"], ["h0.json"], {"h0": "h0.json"}),
    (["h0"], ["H0.YML"], {"h0": "H0.YML"}),
    (["CaseHost"], ["casehost"], {"CaseHost": "casehost"}),
    (["Stra\u00dfe"], ["STRASSE"], {"Stra\u00dfe": "STRASSE"}),
    (["a", "A"], [], {"A": "a"}),
    (["h0", "h0.yaml"], [], {"h0.yaml": "h0"}),
    (["h0"], ["h0"], {}),
    (["h0", "h1"], ["h0.j", "h", ".json"], {}),
])
def test_vars_file_clashes(new: list[str], existing: list[str], clash: dict[str, str]) -> None:
    """Two names whose host_vars (group_vars) file would be one: equal but for case, or one
    the other plus an extension Ansible tries."""
    assert vars_file_clashes(new, existing) == clash


@pytest.mark.parametrize("key", [
    "a", "_", "role", "ansible_host", "A_1", "k" * 255, "a.b", "a-b", "1a", "caf\u00e9",
    "class", "None", "True", "a b", "$x", "a[0]", "k\u043ey", "ansible_group_priority",
    'a"b', "a\\b", '"', "\\", '\\"', "{{ x }}", " x ", "\U0001f600",
])
def test_good_variable_keys(key: str) -> None:
    """Ansible keeps inventory variables of these names (and shows them in
    ansible-inventory), so Craton does too: bundles write keys escaped."""
    assert variable_key_problem(key) is None


@pytest.mark.parametrize("key", ["", "a\n", "a\x00", "\x7f", "k" * 256, "a\ud800"])
def test_bad_variable_keys(key: str) -> None:
    assert variable_key_problem(key) is not None
    assert variable_key_form_problem(key) is not None


@pytest.mark.parametrize("key", ["inventory_hostname", "inventory_hostname_short",
                                 "inventory_dir", "inventory_file", "group_names", "groups",
                                 "hostvars", "playbook_dir", "ansible_facts", "omit",
                                 "ansible_play_hosts", "ansible_version", "ansible_check_mode"])
def test_reserved_variables_are_refused_for_writes(key: str) -> None:
    assert "reserved" in (variable_key_problem(key) or "")
    assert variable_key_form_problem(key) is None


def test_reserved_variables_cover_what_ansible_sets_itself() -> None:
    """The list is ansible-core's: its static internal variables, a host's magic variables,
    the play's and the options' — checked against the installed version."""
    from ansible import constants
    from ansible.inventory.host import Host
    from ansible.utils.vars import load_options_vars

    ansible_sets = set(constants.INTERNAL_STATIC_VARS) | set(Host("h").get_magic_vars())
    ansible_sets |= {f"ansible_{alias}" for alias in ("check_mode", "diff_mode", "forks",
                                                     "inventory_sources", "skip_tags",
                                                     "limit", "run_tags", "verbosity")}
    ansible_sets |= set(load_options_vars("2.19"))
    assert ansible_sets <= RESERVED_VARIABLES, sorted(ansible_sets - RESERVED_VARIABLES)


@pytest.mark.parametrize("key", ["__ansible_unsafe", "__ansible_vault", "__ansible_type",
                                 "__ansible_anything"])
def test_tagged_keys_are_refused(key: str) -> None:
    assert "__ansible_" in (variable_key_problem(key) or "")
    assert "__ansible_" in (tagged_key_problem({"a": [1, {"b": {key: "x"}}]}) or "")
    assert "'a.1.b." + key + "'" in (tagged_key_problem({"a": [1, {"b": {key: "x"}}]}) or "")


def test_values_without_tagged_keys_pass() -> None:
    assert tagged_key_problem({"a": [{"__ansible": 1, "_ansible_x": 2}], "b": "__ansible_x"}) \
        is None


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


@pytest.mark.parametrize("key", [
    "ansible_password", "ansible_become_password", "ansible_ssh_pass", "ansible_become_pass",
    "DB_PASSWORD", "mysql_passwd", "pass", "ssl_passphrase", "vault_token", "token", "secret",
    "aws_secret_access_key", "access_key", "api_key", "grafana_apikey", "tls_private_key"])
def test_keys_named_like_secrets_are_sensitive(key: str) -> None:
    """One rule decides which keys are sealed in storage and hidden in change records."""
    assert is_sensitive_name(key)


@pytest.mark.parametrize("key", [
    "ansible_ssh_private_key_file", "passenger", "tokens_total", "secretary", "bypass",
    "ansible_user", "password_policy", "api_keys_enabled"])
def test_keys_that_only_contain_such_words_are_not(key: str) -> None:
    assert not is_sensitive_name(key)


@given(st.one_of(st.text(), st.sampled_from(SENSITIVE_NAMES).flatmap(
    lambda pattern: st.tuples(st.text(), st.text()).map(
        lambda ends: ends[0] + pattern.replace("*", ends[1]).upper()))))
def test_the_rule_is_each_pattern_matched_in_lower_case(key: str) -> None:
    """The one compiled expression answers as the patterns, matched one by one, would."""
    lowered = key.lower()
    expected = any(fnmatch.fnmatchcase(lowered, pattern) for pattern in SENSITIVE_NAMES)
    assert is_sensitive_name(key) is expected
