"""What the commands share: the client, finding objects by id or name, ``--var k=v``."""

from __future__ import annotations

import json
from argparse import ArgumentParser, Namespace
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from cliff.columns import FormattableColumn

from cratonclient.cli.app import CommandError

if TYPE_CHECKING:
    from cliff.command import Command

    from cratonclient.client import Client
    from cratonclient.resources import Group, Host, Region, Tenant


def client_of(command: Command) -> Client:
    return command.app.client  # type: ignore[attr-defined,no-any-return]


def parse_value(text: str) -> Any:
    """A ``--var`` value: JSON when it is JSON (``22``, ``true``, ``[1, 2]``, ``"22"``),
    otherwise the text itself."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def parse_vars(items: Sequence[str] | None) -> dict[str, Any]:
    """``["rack=r7", "port=22"]`` → ``{"rack": "r7", "port": 22}``."""
    variables: dict[str, Any] = {}
    for item in items or ():
        key, equals, value = item.partition("=")
        if not equals or not key:
            raise CommandError(f"--var {item!r}: write KEY=VALUE")
        variables[key] = parse_value(value)
    return variables


def var_filters(items: Sequence[str] | None) -> list[str]:
    """``--var rack=r7`` (or ``--var rack`` for "is set") as the API's ``rack:r7``."""
    return [item.replace("=", ":", 1) for item in items or ()]


def add_host_filters(parser: ArgumentParser) -> None:
    """The hosts list's filters, shared by host list, inventory get and job run."""
    parser.add_argument("--group", metavar="GROUP",
                        help="hosts of this group or of any of its subgroups")
    parser.add_argument("--var", metavar="KEY=VALUE", action="append",
                        help="hosts whose own variable KEY equals VALUE (KEY alone: is set); "
                             "repeat to require several")
    parser.add_argument("--name", metavar="NAME", help="hosts of this name")
    parser.add_argument("--state", metavar="STATE", action="append",
                        help="hosts in this lifecycle state (repeatable)")
    parser.add_argument("--ip-address", metavar="ADDRESS", help="hosts with this address")
    reach = parser.add_mutually_exclusive_group()
    reach.add_argument("--reachable", dest="reachable", action="store_const", const=True,
                       help="hosts the last job reached")
    reach.add_argument("--unreachable", dest="reachable", action="store_const", const=False,
                       help="hosts the last job could not reach")


def host_filter_args(parsed: Namespace) -> dict[str, Any]:
    return {"group": parsed.group, "var": var_filters(parsed.var) or None, "name": parsed.name,
            "state": parsed.state, "ip_address": parsed.ip_address,
            "reachable": parsed.reachable}


def _one(found: Iterable[Any], what: str, ident: str, hint: str) -> Any:
    matches = []
    for item in found:
        matches.append(item)
        if len(matches) > 1:
            raise CommandError(f"more than one {what} is named {ident!r}: {hint}")
    if not matches:
        raise CommandError(f"no {what} named {ident!r}")
    return matches[0]


def find_tenant(client: Client, ident: str) -> Tenant:
    if ident.isdigit():
        return client.tenants.get(int(ident))
    return _one((t for t in client.tenants.list() if t.name == ident), "tenant", ident,
                "use its id")


def find_region(client: Client, ident: str) -> Region:
    if ident.isdigit():
        return client.regions.get(int(ident))
    return _one(client.regions.list(name=ident), "region", ident, "use its id")


def region_id(client: Client, ident: str | None) -> int | None:
    if ident is None:
        return None
    return int(ident) if ident.isdigit() else find_region(client, ident).id


def find_host(client: Client, ident: str, region: str | None = None) -> Host:
    if ident.isdigit():
        return client.hosts.get(int(ident))
    return _one(client.hosts.list(region=region_id(client, region), name=ident), "host", ident,
                "pass --region or use its id")


def find_group(client: Client, ident: str, region: str | None = None) -> Group:
    if ident.isdigit():
        return client.groups.get(int(ident))
    return _one(client.groups.list(region=region_id(client, region), name=ident), "group",
                ident, "pass --region or use its id")


def add_region_option(parser: ArgumentParser, help: str = "the region (id or name) to look "
                      "names up in") -> None:
    parser.add_argument("--region", metavar="REGION", help=help)


def show(obj: Any, columns: Sequence[str]) -> tuple[tuple[str, ...], tuple[Any, ...]]:
    """A ShowOne answer: the object's ``columns`` that it has."""
    body = obj.to_dict()
    chosen = tuple(column for column in columns if column in body)
    return chosen, tuple(columned(body[column]) for column in chosen)


class ListColumn(FormattableColumn):  # type: ignore[misc]
    """A list: ``a, b`` in a table, the list itself in JSON and YAML."""

    def human_readable(self) -> str:
        return ", ".join(str(item) for item in self._value or ())


class JsonColumn(FormattableColumn):  # type: ignore[misc]
    """A mapping or list: JSON text in a table, the value itself in JSON and YAML."""

    def human_readable(self) -> str:
        return "" if self._value is None else json.dumps(self._value, ensure_ascii=False,
                                                         sort_keys=True)


def columned(value: Any) -> Any:
    """``value`` wrapped so tables show lists and mappings readably."""
    if isinstance(value, list):
        return ListColumn(value)
    if isinstance(value, dict):
        return JsonColumn(value)
    return value


def rows_of(objects: Iterable[Any], columns: Sequence[str]) -> Iterator[tuple[Any, ...]]:
    """One row per object: its ``columns``, lists and mappings made table-readable."""
    for obj in objects:
        yield tuple(columned(getattr(obj, column)) for column in columns)
