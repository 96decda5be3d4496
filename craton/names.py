"""What a name may be.

Host, group, region, secret and reference names end up as Ansible names and as parts of archive
paths (``inventory/host_vars/<host>.yml``, ``hosts/<host>/env/ssh_key``), so they are checked
here once, at creation, and again when a bundle is written. The patterns exclude path separators,
``..``, NUL and control characters by construction, and the length cap leaves room for a file
suffix within a file system's 255-byte name limit.
"""

from __future__ import annotations

import ipaddress
import keyword
import re

from craton.errors import invalid

MAX_NAME = 200

# Hosts: DNS-like names, also IPv4 literals and underscores (Ansible allows them).
HOST_NAME = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?")
# Groups: what Ansible accepts without "invalid characters in group name" rewriting.
GROUP_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Regions, secrets, references: file-name safe words.
SLUG = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?")
VARIABLE_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
SSH_USER = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}")
FQDN_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")

RESERVED_GROUPS = frozenset({"all", "ungrouped"})

WORD_RULE = ("may contain only letters, digits, '.', '-' and '_', and must start and end with a "
             "letter, digit or '_'")
"""What HOST_NAME and SLUG allow, as a refusal says it."""

MAX_VARIABLE_KEY = 255


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


def host_name_problem(name: object) -> str | None:
    return _pattern_problem(name, HOST_NAME, WORD_RULE)


def group_name_problem(name: object) -> str | None:
    problem = _pattern_problem(
        name, GROUP_NAME,
        "must start with a letter or '_' and contain only letters, digits and '_' "
        "(as Ansible requires of group names)",
    )
    if problem is None and name in RESERVED_GROUPS:
        return f"'{name}' is reserved by Ansible"
    return problem


def slug_problem(name: object) -> str | None:
    return _pattern_problem(name, SLUG, WORD_RULE)


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


def variable_key_problem(key: object) -> str | None:
    if not isinstance(key, str) or not VARIABLE_KEY.fullmatch(key):
        return "must be a valid Ansible variable name (letters, digits, '_'; not starting " \
               "with a digit)"
    if len(key) > MAX_VARIABLE_KEY:
        return f"must be at most {MAX_VARIABLE_KEY} characters"
    if keyword.iskeyword(key) or key in ("True", "False", "None"):
        return "is a Python keyword, which Ansible rejects as a variable name"
    return None


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
