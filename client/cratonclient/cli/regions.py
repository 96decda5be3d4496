"""craton region …"""

from __future__ import annotations

from argparse import ArgumentParser, Namespace
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cliff.command import Command
from cliff.lister import Lister
from cliff.show import ShowOne

from cratonclient.cli.common import (
    client_of,
    columned,
    find_region,
    find_tenant,
    parse_vars,
    rows_of,
    show,
)

COLUMNS = ("id", "name", "tenant_id", "description")
SHOWN = ("id", "name", "tenant_id", "description", "variables", "version", "created_at",
         "updated_at")


class ListRegions(Lister):
    """List regions (of one tenant with --tenant)."""

    def get_parser(self, prog_name: str) -> ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("--tenant", dest="of_tenant", metavar="TENANT",
                            help="id or name")
        return parser

    def take_action(self, parsed: Namespace) -> tuple[tuple[str, ...], Iterator[tuple[Any, ...]]]:
        client = client_of(self)
        tenant = find_tenant(client, parsed.of_tenant).id if parsed.of_tenant else None
        return COLUMNS, rows_of(client.regions.list(tenant=tenant), COLUMNS)


class ShowRegion(ShowOne):
    """Show a region."""

    def get_parser(self, prog_name: str) -> ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("region", metavar="REGION", help="id or name")
        return parser

    def take_action(self, parsed: Namespace) -> tuple[tuple[str, ...], tuple[Any, ...]]:
        return show(find_region(client_of(self), parsed.region), SHOWN)


class CreateRegion(ShowOne):
    """Create a region in a tenant."""

    def get_parser(self, prog_name: str) -> ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("tenant_ref", metavar="TENANT", help="id or name")
        parser.add_argument("name", metavar="NAME")
        parser.add_argument("--description", metavar="TEXT")
        parser.add_argument("--var", metavar="KEY=VALUE", action="append",
                            help="a region variable (Ansible's `all`); repeatable")
        return parser

    def take_action(self, parsed: Namespace) -> tuple[tuple[str, ...], tuple[Any, ...]]:
        client = client_of(self)
        fields: dict[str, Any] = {"variables": parse_vars(parsed.var)}
        if parsed.description:
            fields["description"] = parsed.description
        tenant = find_tenant(client, parsed.tenant_ref)
        return show(client.regions.create(tenant.id, parsed.name, **fields), SHOWN)


class SetRegion(Command):
    """Rename or describe a region, set (merge) or unset its variables."""

    def get_parser(self, prog_name: str) -> ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("region", metavar="REGION", help="id or name")
        parser.add_argument("--name", metavar="NAME")
        parser.add_argument("--description", metavar="TEXT")
        parser.add_argument("--var", metavar="KEY=VALUE", action="append")
        parser.add_argument("--unset-var", metavar="KEY", action="append")
        return parser

    def take_action(self, parsed: Namespace) -> int:
        region = find_region(client_of(self), parsed.region)
        if parsed.name:
            region.name = parsed.name
        if parsed.description is not None:
            region.description = parsed.description
        if parsed.var or parsed.unset_var:
            region.variables.update(parse_vars(parsed.var))
            for key in parsed.unset_var or ():
                region.variables.pop(key, None)
        region.save()
        return 0


class DeleteRegion(Command):
    """Delete a region (--cascade: with its hosts and groups)."""

    def get_parser(self, prog_name: str) -> ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("region", metavar="REGION", help="id or name")
        parser.add_argument("--cascade", action="store_true")
        return parser

    def take_action(self, parsed: Namespace) -> int:
        find_region(client_of(self), parsed.region).delete(cascade=parsed.cascade)
        return 0


class RegionVars(Lister):
    """A region's variables."""

    def get_parser(self, prog_name: str) -> ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("region", metavar="REGION", help="id or name")
        return parser

    def take_action(self, parsed: Namespace) -> tuple[tuple[str, ...], list[tuple[Any, ...]]]:
        variables = find_region(client_of(self), parsed.region).variables or {}
        return ("key", "value"), [(key, columned(variables[key])) for key in sorted(variables)]


class ImportInventory(ShowOne):
    """Read an Ansible inventory (INI, YAML, or an inventory script's JSON) into a region."""

    def get_parser(self, prog_name: str) -> ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("region", metavar="REGION", help="id or name")
        parser.add_argument("file", metavar="PATH",
                            help="an inventory file (format from its suffix: .ini or none, "
                                 ".yml/.yaml, .json) or a directory (hosts, group_vars/, "
                                 "host_vars/)")
        parser.add_argument("--dry-run", action="store_true",
                            help="show what would change, change nothing")
        return parser

    def take_action(self, parsed: Namespace) -> tuple[tuple[str, ...], tuple[Any, ...]]:
        client = client_of(self)
        region = find_region(client, parsed.region)
        path = Path(parsed.file)
        if path.is_dir():
            files = {str(item.relative_to(path)): item.read_text() for item in
                     sorted(path.rglob("*")) if item.is_file()}
            plan = client.regions.import_inventory(region.id, "directory", files=files,
                                                   dry_run=parsed.dry_run)
        else:
            fmt = {".yml": "yaml", ".yaml": "yaml", ".json": "json"}.get(path.suffix, "ini")
            plan = client.regions.import_inventory(region.id, fmt, content=path.read_text(),
                                                   dry_run=parsed.dry_run)
        columns = tuple(sorted(plan))
        return columns, tuple(columned(plan[column]) for column in columns)
