"""craton host …"""

from __future__ import annotations

import json
from argparse import ArgumentParser, Namespace
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cliff.command import Command
from cliff.lister import Lister
from cliff.show import ShowOne

from cratonclient.cli.app import CommandError
from cratonclient.cli.common import (
    add_host_filters,
    add_region_option,
    client_of,
    find_host,
    host_filter_args,
    parse_vars,
    region_id,
    rows_of,
    show,
)

COLUMNS = ("id", "name", "region_id", "ip_address", "state", "groups", "reachable")
LONG = ("fqdn", "ssh_user", "ssh_port", "last_seen_at", "variables")
SHOWN = ("id", "name", "region_id", "fqdn", "ip_address", "ssh_user", "ssh_port", "state",
         "groups", "reachable", "last_seen_at", "variables", "version", "created_at",
         "updated_at")


class ListHosts(Lister):
    """List hosts, filtered (--group includes subgroups' hosts; --var rack=r7)."""

    def get_parser(self, prog_name: str) -> ArgumentParser:
        parser = super().get_parser(prog_name)
        add_region_option(parser, "only this region's hosts (id or name)")
        add_host_filters(parser)
        parser.add_argument("--long", action="store_true",
                            help="also FQDN, SSH user and port, last seen, variables")
        return parser

    def take_action(self, parsed: Namespace) -> tuple[tuple[str, ...], Iterator[tuple[Any, ...]]]:
        client = client_of(self)
        columns = COLUMNS + (LONG if parsed.long else ())
        hosts = client.hosts.list(region=region_id(client, parsed.region),
                                  **host_filter_args(parsed))
        return columns, rows_of(hosts, columns)


class ShowHost(ShowOne):
    """Show a host (by id, or by name with --region)."""

    def get_parser(self, prog_name: str) -> ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("host", metavar="HOST", help="id or name")
        add_region_option(parser)
        return parser

    def take_action(self, parsed: Namespace) -> tuple[tuple[str, ...], tuple[Any, ...]]:
        return show(find_host(client_of(self), parsed.host, parsed.region), SHOWN)


def add_host_fields(parser: ArgumentParser) -> None:
    parser.add_argument("--ip-address", metavar="ADDRESS")
    parser.add_argument("--fqdn", metavar="FQDN")
    parser.add_argument("--ssh-user", metavar="USER")
    parser.add_argument("--ssh-port", metavar="PORT", type=int)
    parser.add_argument("--state", metavar="STATE",
                        help="defined, creating, created, ready, stopping, stopped, terminated")
    parser.add_argument("--var", metavar="KEY=VALUE", action="append",
                        help="set a variable (VALUE is read as JSON when it is JSON); "
                             "repeatable")


def host_fields(parsed: Namespace) -> dict[str, Any]:
    fields = {"ip_address": parsed.ip_address, "fqdn": parsed.fqdn,
              "ssh_user": parsed.ssh_user, "ssh_port": parsed.ssh_port, "state": parsed.state}
    return {key: value for key, value in fields.items() if value is not None}


class CreateHost(ShowOne):
    """Create a host in a region."""

    def get_parser(self, prog_name: str) -> ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("region", metavar="REGION", help="id or name")
        parser.add_argument("name", metavar="NAME")
        add_host_fields(parser)
        parser.add_argument("--group", metavar="GROUP", action="append",
                            help="a group it belongs to (repeatable)")
        return parser

    def take_action(self, parsed: Namespace) -> tuple[tuple[str, ...], tuple[Any, ...]]:
        client = client_of(self)
        fields = host_fields(parsed)
        if parsed.var:
            fields["variables"] = parse_vars(parsed.var)
        if parsed.group:
            fields["groups"] = parsed.group
        host = client.hosts.create(region_id(client, parsed.region) or 0, parsed.name, **fields)
        return show(host, SHOWN)


class ImportHosts(Lister):
    """Create many hosts at once from a JSON or YAML list of host bodies: all or none."""

    def get_parser(self, prog_name: str) -> ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("region", metavar="REGION", help="id or name")
        parser.add_argument("file", metavar="FILE",
                            help='[{"name": "c1", "ip_address": "10.0.0.1", "groups": […], '
                                 '"variables": {…}}, …] as JSON or YAML ("-": stdin)')
        return parser

    def take_action(self, parsed: Namespace) -> tuple[tuple[str, ...], Iterator[tuple[Any, ...]]]:
        import sys

        import yaml

        text = sys.stdin.read() if parsed.file == "-" else Path(parsed.file).read_text()
        bodies = yaml.safe_load(text)
        if not isinstance(bodies, list):
            raise CommandError(f"{parsed.file}: expected a list of hosts")
        client = client_of(self)
        made = client.hosts.create_many(region_id(client, parsed.region) or 0, bodies)
        return COLUMNS, rows_of(made, COLUMNS)


class SetHost(Command):
    """Change a host: fields, variables (merged), groups (replaced)."""

    def get_parser(self, prog_name: str) -> ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("host", metavar="HOST", help="id or name")
        add_region_option(parser)
        parser.add_argument("--name", metavar="NAME", help="rename it")
        add_host_fields(parser)
        parser.add_argument("--unset-var", metavar="KEY", action="append",
                            help="remove a variable (repeatable)")
        parser.add_argument("--group", metavar="GROUP", action="append",
                            help="replace its groups with these (repeatable)")
        parser.add_argument("--no-group", action="store_true", help="remove it from every group")
        return parser

    def take_action(self, parsed: Namespace) -> int:
        host = find_host(client_of(self), parsed.host, parsed.region)
        for name, value in host_fields(parsed).items():
            setattr(host, name, value)
        if parsed.name:
            host.name = parsed.name
        if parsed.var or parsed.unset_var:
            variables = host.variables
            variables.update(parse_vars(parsed.var))
            for key in parsed.unset_var or ():
                variables.pop(key, None)
        if parsed.group or parsed.no_group:
            host.groups = list(parsed.group or ())
        host.save()
        return 0


class DeleteHost(Command):
    """Delete hosts, with their variables and secrets."""

    def get_parser(self, prog_name: str) -> ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("hosts", metavar="HOST", nargs="+", help="id or name")
        add_region_option(parser)
        return parser

    def take_action(self, parsed: Namespace) -> int:
        client = client_of(self)
        for ident in parsed.hosts:
            find_host(client, ident, parsed.region).delete()
        return 0


class HostVars(Lister):
    """A host's variables; --resolved: what Ansible will see, and where each came from."""

    def get_parser(self, prog_name: str) -> ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("host", metavar="HOST", help="id or name")
        add_region_option(parser)
        parser.add_argument("--resolved", action="store_true",
                            help="the variables Ansible will see, with their origin")
        parser.add_argument("--full", action="store_true",
                            help="with --resolved: also what each value overrode")
        return parser

    def take_action(self, parsed: Namespace) -> tuple[tuple[str, ...], list[tuple[Any, ...]]]:
        client = client_of(self)
        host = find_host(client, parsed.host, parsed.region)
        if not parsed.resolved:
            own = host.variables or {}
            return ("key", "value"), [(key, _shown(own[key])) for key in sorted(own)]
        resolved = host.resolved_variables(provenance="full" if parsed.full else True)
        provenance = resolved.provenance or {}
        rows = []
        for key in sorted(resolved.variables):
            origin = provenance.get(key)
            row: tuple[Any, ...] = (key, _shown(resolved.variables[key]),
                                    origin.describe() if origin else "")
            if parsed.full:
                row += ("; ".join(_overridden(item) for item in
                                  (origin.overridden or [] if origin else [])),)
            rows.append(row)
        columns = ("key", "value", "source") + (("overrode",) if parsed.full else ())
        return columns, rows


def _shown(value: Any) -> Any:
    """Mappings and lists as JSON text, so a table shows them as Ansible would read them."""
    return json.dumps(value, ensure_ascii=False) if isinstance(value, dict | list) else value


def _overridden(item: Any) -> str:
    from cratonclient.resources import Provenance

    if isinstance(item, dict):
        origin = Provenance(item)
        value = f" = {_shown(item['value'])}" if "value" in item else ""
        return origin.describe() + value
    return str(item)


class HostStatus(ShowOne):
    """Where a host is at: reachable, last seen, its last job's result."""

    def get_parser(self, prog_name: str) -> ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("host", metavar="HOST", help="id or name")
        add_region_option(parser)
        return parser

    def take_action(self, parsed: Namespace) -> tuple[tuple[str, ...], tuple[Any, ...]]:
        host = find_host(client_of(self), parsed.host, parsed.region)
        return show(host.status(), ("host_id", "name", "reachable", "last_seen_at", "job"))
