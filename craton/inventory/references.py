"""References: group-variable YAML files kept elsewhere (a git repository, a web server, a local
directory). Stored and validated here; fetched when a bundle is built.

A URL the server would refuse to fetch is refused when it is stored, so a tenant learns of it
at once rather than from every bundle: a file:// URL outside the directories the group's tenant
may read, a host that is a loopback, private, link-local (…) address or ``localhost``. Host
names are checked again each time they are fetched, since what they resolve to can change."""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from craton.context import Action, RequestContext
from craton.db.models import Group, Reference
from craton.db.util import flush_or_conflict
from craton.errors import Conflict, invalid
from craton.names import check, slug_problem
from craton.sources.fetch import Fetcher

SCHEMES = ("git", "http", "https", "file")
REF_FORBIDDEN = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]|\.\.|@\{|//")


def url_problem(url: object) -> str | None:
    if not isinstance(url, str) or not url:
        return "must be a non-empty string"
    if len(url) > 2048:
        return "must be at most 2048 characters"
    if any(ord(ch) < 33 or ord(ch) == 127 for ch in url):
        return "must not contain spaces or control characters"
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return "is not a valid URL"
    if parts.scheme not in SCHEMES:
        return "scheme must be one of " + ", ".join(SCHEMES)
    if parts.username is not None or parts.password is not None:
        return "must not embed credentials (they would show in every listing)"
    try:
        parts.port  # noqa: B018 - parsing the port is the check
    except ValueError:
        return "has an invalid port"
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost") or not parts.path.startswith("/"):
            return "a file URL must be file:///absolute/path"
    elif not parts.hostname:
        return f"a {parts.scheme} URL must name a host"
    return None


def ref_problem(ref: object) -> str | None:
    """The rules of ``git check-ref-format --allow-onelevel``, and no leading '-'."""
    reason = "must be a git branch, tag or commit name (see git check-ref-format)"
    if not isinstance(ref, str) or not 1 <= len(ref) <= 255 or ref == "@":
        return reason
    if REF_FORBIDDEN.search(ref) or ref[0] in "-/" or ref[-1] in "/.":
        return reason
    if any(part.startswith(".") or part.endswith(".lock") for part in ref.split("/")):
        return reason
    return None


def path_problem(path: object) -> str | None:
    """A relative path inside the fetched tree: no absolute paths, no '..', no NUL or '\\'."""
    if not isinstance(path, str) or not path:
        return "must be a non-empty string"
    if len(path) > 1024:
        return "must be at most 1024 characters"
    if path.startswith("/") or "\\" in path or any(ord(ch) < 32 for ch in path):
        return "must be a relative path without backslashes or control characters"
    if any(part in ("", ".", "..") for part in path.split("/")):
        return "must not contain empty, '.' or '..' parts"
    return None


def _clean(data: Mapping[str, Any], group: Group, fetcher: Fetcher) -> dict[str, Any]:
    rules = {"name": slug_problem, "url": url_problem, "ref": ref_problem,
             "path": path_problem}
    problems = {
        field: problem for field, rule in rules.items()
        if field in data and not (field in ("ref", "path") and data[field] is None)
        and (problem := rule(data[field])) is not None
    }
    if "url" in data and "url" not in problems:
        refused = fetcher.for_tenant(group.region.tenant_id).refusal(data["url"])
        if refused is not None:
            problems["url"] = refused
    if problems:
        raise invalid(problems)
    return {field: data[field] for field in rules if field in data}


def create_reference(session: Session, ctx: RequestContext, group: Group,
                     data: Mapping[str, Any], *, fetcher: Fetcher) -> Reference:
    ctx.require(Action.WRITE)
    clean = _clean(data, group, fetcher)
    check("name", slug_problem(clean.get("name")))
    _ensure_unique(session, group.id, clean["name"])
    reference = Reference(group_id=group.id, **clean)
    session.add(reference)
    flush_or_conflict(session, f"reference {clean['name']!r} already exists in group {group.id}",
                      {"name": "already exists in the group"})
    return reference


def update_reference(session: Session, ctx: RequestContext, reference: Reference,
                     data: Mapping[str, Any], *, fetcher: Fetcher) -> Reference:
    ctx.require(Action.WRITE)
    clean = _clean(data, session.get_one(Group, reference.group_id), fetcher)
    if "name" in clean and clean["name"] != reference.name:
        _ensure_unique(session, reference.group_id, clean["name"])
    for field, value in clean.items():
        setattr(reference, field, value)
    flush_or_conflict(session, f"reference {reference.name!r} already exists",
                      {"name": "already exists in the group"})
    return reference


def delete_reference(session: Session, ctx: RequestContext, reference: Reference) -> None:
    ctx.require(Action.WRITE)
    session.delete(reference)
    session.flush()


def _ensure_unique(session: Session, group_id: int, name: str) -> None:
    if session.scalar(select(Reference.id).where(Reference.group_id == group_id,
                                                 Reference.name == name)) is not None:
        raise Conflict(f"reference {name!r} already exists in group {group_id}",
                       fields={"name": "already exists in the group"})
