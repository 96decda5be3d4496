"""What a name may be.

Host, group, region, secret and reference names end up as Ansible names and as parts of archive
paths (``inventory/host_vars/<host>.json``, ``hosts/<host>/env/ssh_key``), so they are checked
here once, at creation, and again when a bundle is written. Host and group names, and variable
keys, follow Ansible's own rules — whatever Ansible keeps as it was written is accepted, whatever
it misreads is refused, each with the reason and the place in ansible-core it comes from — and
must also be one safe path part. Region, secret and reference names are Craton's own slugs.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import re
import unicodedata
from collections.abc import Iterable, Mapping
from typing import Any

from craton.errors import invalid

MAX_NAME = 200
"""Bytes (UTF-8) a host or group name may take: a file name holds 255, and names get a suffix
(``host_vars/<host>.json``)."""

# Regions, secrets, references: file-name safe words (Craton's own names, never Ansible's).
SLUG = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?")
SSH_USER = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}")
FQDN_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")

# --- Host and group names ------------------------------------------------------------------------
#
# Ansible takes any string as a host or group name: group names that are not Python identifiers
# (``nova-api``, ``1st``, ``café``) only warn (ansible.inventory.group.to_safe_group_name
# replaces nothing under the default TRANSFORM_INVALID_GROUP_CHARS=never), and host names are
# not checked at all. What Ansible misreads, and Craton therefore refuses:
#   - ``all`` and ``ungrouped`` name its implicit groups (InventoryData adds both); ``_meta`` is
#     the dynamic-inventory JSON key for host variables, not a group.
#   - ``[`` and ``]``: the INI and YAML plugins expand ``h[1:3]`` to h1..h3 and fail on other
#     brackets (InventoryFileParser._expand_hostpattern / ansible.parsing.utils.addresses).
#   - ``:`` (but in an IPv6 address): ``h:22`` is host h on port 22 in both plugins; ``g:vars``
#     and ``g:children`` are INI section syntax; host patterns split at ':'.
#   - ``*`` and ``?``: host patterns match them as wildcards (InventoryManager._match_list).
#   - ``,``, whitespace, and a leading ``!``, ``&``, ``~`` or ``@``: host patterns
#     (ansible.inventory.manager.split_host_pattern, --limit, ``hosts:``) split at commas,
#     strip spaces and read those prefixes as exclusion, intersection, regex and limit file;
#     and ansible-playbook's argument parser reads ``--limit -x`` as an option, not a name.
# What Craton refuses so the name stays one safe path part on every file system that extracts
# a bundle (Craton's rule, not Ansible's): '/' and '\\', NUL and other control characters,
# invisible format characters, '..' anywhere and a leading '.', text not in Unicode NFC (a
# normalizing file system would make it another file), and more than MAX_NAME bytes.
RESERVED_GROUP_NAMES = frozenset({"all", "ungrouped", "_meta"})
RESERVED_HOST_NAMES = frozenset({"all", "ungrouped"})
PATTERN_PREFIXES = "!&~@-"
VARS_FILE_SUFFIXES = (".json", ".yml", ".yaml")
"""What Ansible's host_group_vars plugin appends to a name when it looks for its vars file
(DataLoader.find_vars_files with C.YAML_FILENAME_EXTENSIONS)."""


def _path_part_problem(name: str) -> str | None:
    """Why ``name`` is not one safe archive path part on any file system, or None."""
    if not name:
        return "must not be empty"
    if len(name.encode("utf-8", "surrogatepass")) > MAX_NAME:
        return f"must be at most {MAX_NAME} bytes in UTF-8 (a file name holds 255)"
    if "/" in name or "\\" in name:
        return "must not contain '/' or '\\' (it becomes a file name in bundles)"
    for char in name:
        category = unicodedata.category(char)
        if category == "Cc":
            return "must not contain control characters (NUL, newline, tab, …)"
        if category in ("Cf", "Cs", "Co", "Cn", "Zl", "Zp"):
            return (f"must not contain the invisible or unassigned character U+{ord(char):04X}")
    if ".." in name:
        return "must not contain '..'"
    if name.startswith("."):
        return "must not start with '.' (a hidden file in bundles)"
    if unicodedata.normalize("NFC", name) != name:
        return ("must be in Unicode NFC form (a file system that normalizes names would make "
                "it another name's file)")
    return None


def _ansible_name_problem(name: str, *, colon_ok: bool) -> str | None:
    """What Ansible's inventory plugins and host patterns would misread in ``name``."""
    if "[" in name or "]" in name:
        return "must not contain '[' or ']' (Ansible expands h[1:3] to a range of hosts)"
    if "*" in name or "?" in name:
        return ("must not contain '*' or '?' (Ansible's host patterns read them as wildcards, "
                "so the name would select others too)")
    if ":" in name and not colon_ok:
        return ("must not contain ':' (Ansible reads 'name:22' as a port, 'g:vars' as INI "
                "syntax, and splits host patterns at ':')")
    if "," in name:
        return "must not contain ',' (Ansible splits host patterns and --limit at commas)"
    if any(char.isspace() for char in name):
        return ("must not contain whitespace (Ansible's INI inventory splits at it and host "
                "patterns strip it)")
    if name[0] == "-":
        return ("must not start with '-' (ansible-playbook's command line would read "
                "'--limit -name' as an option)")
    if name[0] in PATTERN_PREFIXES:
        return ("must not start with '!', '&', '~' or '@' (Ansible's host patterns read them as "
                "exclusion, intersection, regex and limit file)")
    return None


def _is_ipv6(name: str) -> bool:
    try:
        ipaddress.IPv6Address(name)
    except ValueError:
        return False
    return True


def host_name_problem(name: object) -> str | None:
    """Why ``name`` cannot be a host name, or None. See the rule above."""
    if not isinstance(name, str):
        return "must be a string"
    problem = _path_part_problem(name) or _ansible_name_problem(name, colon_ok=_is_ipv6(name))
    if problem is None and name in RESERVED_HOST_NAMES:
        return f"'{name}' is one of Ansible's implicit groups, so it cannot name a host"
    return problem


def group_name_problem(name: object) -> str | None:
    """Why ``name`` cannot be a group name, or None. See the rule above."""
    if not isinstance(name, str):
        return "must be a string"
    problem = _path_part_problem(name) or _ansible_name_problem(name, colon_ok=False)
    if problem is None and name in RESERVED_GROUP_NAMES:
        if name == "_meta":
            return ("'_meta' is reserved by Ansible: it holds host variables in "
                    "dynamic-inventory JSON")
        return f"'{name}' is reserved by Ansible: it is one of its implicit groups"
    return problem


def vars_file_stem(name: str) -> str:
    """The file ``name``'s vars are found under, on a case-insensitive file system: Ansible
    looks for ``<name>``, ``<name>.json``, ``<name>.yml`` and ``<name>.yaml``, so host ``h0``
    also reads ``h0.json``'s file."""
    folded = name.casefold()
    for suffix in VARS_FILE_SUFFIXES:
        if folded.endswith(suffix) and len(folded) > len(suffix):
            return folded[: -len(suffix)]
    return folded


def vars_file_clashes(new: Iterable[str], existing: Iterable[str]) -> dict[str, str]:
    """Each name of ``new`` whose vars file would be (or be found as) that of another name in
    ``new`` or ``existing`` → that other name: names equal but for case (one file on a
    case-insensitive file system), or one the other plus '.json', '.yml' or '.yaml'."""
    by_fold: dict[str, str] = {}
    by_stem: dict[str, str] = {}

    def remember(name: str) -> None:
        by_fold.setdefault(name.casefold(), name)
        if vars_file_stem(name) != name.casefold():
            by_stem.setdefault(vars_file_stem(name), name)

    for name in existing:
        remember(name)
    clashes: dict[str, str] = {}
    for name in new:
        folded, stem = name.casefold(), vars_file_stem(name)
        other = by_fold.get(folded) or by_stem.get(folded) or (
            by_fold.get(stem) if stem != folded else None)
        if other is not None and other != name:
            clashes[name] = other
        remember(name)
    return clashes


def _pattern_problem(value: object, pattern: re.Pattern[str], what: str) -> str | None:
    if not isinstance(value, str):
        return "must be a string"
    if not value:
        return "must not be empty"
    if len(value) > MAX_NAME:
        return f"must be at most {MAX_NAME} characters"
    if not pattern.fullmatch(value):
        return what
    if ".." in value:
        return "must not contain '..'"
    return None


def slug_problem(name: object) -> str | None:
    return _pattern_problem(
        name, SLUG,
        "may contain only letters, digits, '.', '-' and '_', and must start and end with a "
        "letter, digit or '_'",
    )


def keystone_id_problem(value: str) -> str | None:
    """Keystone ids are hex (projects made by Keystone) or, when given at creation, any
    printable text of up to 64 characters."""
    if value != value.strip() or not value.isprintable():
        return "must be a Keystone project id: printable, without surrounding spaces"
    return None


def tenant_name_problem(name: object) -> str | None:
    if not isinstance(name, str):
        return "must be a string"
    if not name.strip():
        return "must not be empty"
    if name != name.strip():
        return "must not start or end with spaces"
    if len(name) > 255:
        return "must be at most 255 characters"
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in name):
        return "must not contain control characters"
    return None


# --- Variable names ------------------------------------------------------------------------------
#
# Ansible keeps inventory variables of any name: Host.set_variable and Group.set_variable only
# warn (a deprecation, for 2.23) about names that are not identifiers, and vars files are merged
# unchecked — so ``a.b``, ``a-b``, ``1st`` and ``café`` are kept and shown by ansible-inventory.
# What Ansible drops or overrides, and Craton therefore refuses:
#   - the variables it sets itself, which win over any inventory value: ansible.constants.
#     INTERNAL_STATIC_VARS (removed from ansible-inventory's output), the host's magic
#     variables (Host.get_magic_vars), the play's (VariableManager._get_magic_variables), the
#     command-line options' (ansible.utils.vars.load_options_vars), and ``omit``, the Jinja
#     global that marks an omitted option. tests/unit/test_names.py checks this list against
#     the installed ansible-core.
#   - keys starting ``__ansible_`` at any depth: Ansible's JSON loader decodes a mapping holding
#     ``__ansible_unsafe`` or ``__ansible_vault`` into a string or a vault value
#     (ansible._internal._json._profiles._legacy), or fails on it.
# Craton's own rules: a key is 1 to 255 characters without control characters. Any other
# character, '"' and '\\' included, is kept: bundles write keys as JSON strings, escaped.
MAX_VARIABLE_KEY = 255
RESERVED_VARIABLES = frozenset({
    # ansible.constants.INTERNAL_STATIC_VARS
    "ansible_async_path", "ansible_collection_name", "ansible_config_file",
    "ansible_dependent_role_names", "ansible_diff_mode", "ansible_facts", "ansible_forks",
    "ansible_inventory_sources", "ansible_limit", "ansible_play_batch", "ansible_play_hosts",
    "ansible_play_hosts_all", "ansible_play_role_names", "ansible_playbook_python",
    "ansible_role_name", "ansible_role_names", "ansible_run_tags", "ansible_skip_tags",
    "ansible_verbosity", "ansible_version", "inventory_dir", "inventory_file",
    "inventory_hostname", "inventory_hostname_short", "groups", "group_names", "hostvars",
    "playbook_dir", "play_hosts", "role_name", "role_names", "role_path", "role_uuid",
    # VariableManager._get_magic_variables and load_options_vars beyond that list
    "ansible_play_name", "ansible_check_mode",
    # the Jinja global of an omitted option
    "omit",
})
TAGGED_KEY_PREFIX = "__ansible_"


def variable_key_form_problem(key: object) -> str | None:
    """Why ``key`` cannot name any variable Craton stores, or None (lookups and deletions use
    this; writes use :func:`variable_key_problem`)."""
    if not isinstance(key, str) or not key:
        return "must be a non-empty string"
    if len(key) > MAX_VARIABLE_KEY:
        return f"must be at most {MAX_VARIABLE_KEY} characters"
    if any(unicodedata.category(char) in ("Cc", "Cs") for char in key):
        return "must not contain control characters (Craton's rule)"
    return None


def variable_key_problem(key: object) -> str | None:
    """Why a variable may not be set under ``key``, or None. See the rule above."""
    problem = variable_key_form_problem(key)
    if problem is not None:
        return problem
    if key in RESERVED_VARIABLES:
        return ("is set by Ansible itself, which ignores an inventory value of that name "
                "(a reserved variable)")
    if isinstance(key, str) and key.startswith(TAGGED_KEY_PREFIX):
        return (f"must not start with '{TAGGED_KEY_PREFIX}' (Ansible's JSON loader reads such "
                "keys as tagged values)")
    return None


def tagged_key_problem(value: Any) -> str | None:
    """Where a mapping inside ``value`` holds a ``__ansible_`` key, which Ansible's JSON loader
    decodes into something else (a string, a vault value) or fails on; None if none does.
    Iterative, so any depth is safe."""
    stack: list[tuple[str, Any]] = [("", value)]
    while stack:
        path, item = stack.pop()
        if isinstance(item, Mapping):
            for key, child in item.items():
                where = f"{path}.{key}" if path else str(key)
                if isinstance(key, str) and key.startswith(TAGGED_KEY_PREFIX):
                    return (f"holds the key {where!r}; Ansible's JSON loader reads a mapping "
                            f"with a '{TAGGED_KEY_PREFIX}' key as a tagged value, not as data")
                stack.append((where, child))
        elif isinstance(item, list | tuple):
            stack.extend((f"{path}.{index}" if path else str(index), child)
                         for index, child in enumerate(item))
    return None


HIDDEN = "<hidden>"
"""What a sensitive value is shown as wherever it may not be seen."""
SENSITIVE_NAMES = ("*password", "*passwd", "pass", "*_pass", "passphrase", "*_passphrase",
                   "token", "*_token", "secret", "*_secret", "access_key", "*_access_key",
                   "api_key", "*_api_key", "apikey", "*_apikey", "private_key", "*_private_key")
"""Variable keys sensitive whatever they are written with (compared in lower case): Ansible's
own (ansible_password, ansible_become_password, ansible_ssh_pass, ansible_become_pass) and the
usual names of passwords, tokens, secrets and keys. Sensitive values are stored sealed
(craton.inventory.variables) and never held by a change record (craton.db.changes)."""


_SENSITIVE = re.compile("|".join(fnmatch.translate(pattern) for pattern in SENSITIVE_NAMES))
"""SENSITIVE_NAMES as one expression: a bulk write asks of every key of every host."""


def is_sensitive_name(key: str) -> bool:
    return _SENSITIVE.match(key.lower()) is not None


def ssh_user_problem(user: object) -> str | None:
    if not isinstance(user, str) or not SSH_USER.fullmatch(user):
        return "must be a user name of letters, digits, '.', '-' and '_' (at most 64)"
    return None


def fqdn_problem(fqdn: object) -> str | None:
    if not isinstance(fqdn, str) or not fqdn:
        return "must be a non-empty string"
    name = fqdn[:-1] if fqdn.endswith(".") else fqdn
    if len(name) > 253 or not all(FQDN_LABEL.fullmatch(label) for label in name.split(".")):
        return "must be a DNS name: dot-separated labels of letters, digits and '-'"
    return None


def normalize_ip(value: object) -> str:
    """The canonical text of an IPv4/IPv6 address; ValueError when it is not one."""
    if not isinstance(value, str):
        raise ValueError("must be a string")
    if "%" in value:
        raise ValueError("must be an IPv4 or IPv6 address without a zone (%…) suffix")
    try:
        return ipaddress.ip_address(value.strip()).compressed
    except ValueError:
        raise ValueError("must be an IPv4 or IPv6 address") from None


def check(field: str, problem: str | None) -> None:
    """Raise the one-field 422 when ``problem`` is set."""
    if problem is not None:
        raise invalid({field: problem})
