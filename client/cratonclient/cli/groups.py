"""craton group …"""

from __future__ import annotations

from argparse import ArgumentParser, Namespace
from collections.abc import Iterator
from typing import Any

from cliff.command import Command
from cliff.lister import Lister
from cliff.show import ShowOne

from cratonclient.cli.common import (
    add_region_option,
    client_of,
    columned,
    find_group,
    parse_vars,
    region_id,
    rows_of,
    show,
)

COLUMNS = ("id", "name", "region_id", "parents", "children", "depends_on")
SHOWN = ("id", "name", "region_id", "description", "parents", "children", "depends_on",
         "variables", "version", "created_at", "updated_at")


def _group_parser(parser: ArgumentParser) -> ArgumentParser:
    parser.add_argument("group", metavar="GROUP", help="id or name")
    add_region_option(parser)
    return parser


class ListGroups(Lister):
    """List groups (of one region with --region)."""

    def get_parser(self, prog_name: str) -> ArgumentParser:
        parser = super().get_parser(prog_name)
        add_region_option(parser, "only this region's groups (id or name)")
        parser.add_argument("--name", metavar="NAME")
        return parser

    def take_action(self, parsed: Namespace) -> tuple[tuple[str, ...], Iterator[tuple[Any, ...]]]:
        client = client_of(self)
        groups = client.groups.list(region=region_id(client, parsed.region), name=parsed.name)
        return COLUMNS, rows_of(groups, COLUMNS)


class ShowGroup(ShowOne):
    """Show a group (by id, or by name with --region)."""

    def get_parser(self, prog_name: str) -> ArgumentParser:
        return _group_parser(super().get_parser(prog_name))

    def take_action(self, parsed: Namespace) -> tuple[tuple[str, ...], tuple[Any, ...]]:
        return show(find_group(client_of(self), parsed.group, parsed.region), SHOWN)


class CreateGroup(ShowOne):
    """Create a group in a region, with its parents, subgroups, dependencies and hosts."""

    def get_parser(self, prog_name: str) -> ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("region", metavar="REGION", help="id or name")
        parser.add_argument("name", metavar="NAME")
        parser.add_argument("--description", metavar="TEXT")
        parser.add_argument("--parent", metavar="GROUP", action="append", default=[])
        parser.add_argument("--child", metavar="GROUP", action="append", default=[])
        parser.add_argument("--depends-on", metavar="GROUP", action="append", default=[],
                            help="its hosts run after this group's in a job (repeatable)")
        parser.add_argument("--host", metavar="HOST", action="append", default=[])
        parser.add_argument("--var", metavar="KEY=VALUE", action="append")
        return parser

    def take_action(self, parsed: Namespace) -> tuple[tuple[str, ...], tuple[Any, ...]]:
        client = client_of(self)
        fields: dict[str, Any] = {
            "parents": parsed.parent, "children": parsed.child, "depends_on": parsed.depends_on,
            "hosts": parsed.host, "variables": parse_vars(parsed.var)}
        if parsed.description:
            fields["description"] = parsed.description
        group = client.groups.create(region_id(client, parsed.region) or 0, parsed.name,
                                     **fields)
        return show(group, SHOWN)


class SetGroup(Command):
    """Rename or describe a group, set (merge) or unset variables, replace dependencies."""

    def get_parser(self, prog_name: str) -> ArgumentParser:
        parser = _group_parser(super().get_parser(prog_name))
        parser.add_argument("--name", metavar="NAME")
        parser.add_argument("--description", metavar="TEXT")
        parser.add_argument("--var", metavar="KEY=VALUE", action="append")
        parser.add_argument("--unset-var", metavar="KEY", action="append")
        parser.add_argument("--depends-on", metavar="GROUP", action="append",
                            help="replace its dependencies with these (repeatable)")
        return parser

    def take_action(self, parsed: Namespace) -> int:
        group = find_group(client_of(self), parsed.group, parsed.region)
        if parsed.name:
            group.name = parsed.name
        if parsed.description is not None:
            group.description = parsed.description
        if parsed.var or parsed.unset_var:
            group.variables.update(parse_vars(parsed.var))
            for key in parsed.unset_var or ():
                group.variables.pop(key, None)
        if parsed.depends_on is not None:
            group.depends_on = parsed.depends_on
        group.save()
        return 0


class DeleteGroup(Command):
    """Delete a group (its hosts and subgroups stay)."""

    def get_parser(self, prog_name: str) -> ArgumentParser:
        return _group_parser(super().get_parser(prog_name))

    def take_action(self, parsed: Namespace) -> int:
        find_group(client_of(self), parsed.group, parsed.region).delete()
        return 0


class GroupVars(Lister):
    """A group's own variables."""

    def get_parser(self, prog_name: str) -> ArgumentParser:
        return _group_parser(super().get_parser(prog_name))

    def take_action(self, parsed: Namespace) -> tuple[tuple[str, ...], list[tuple[Any, ...]]]:
        variables = find_group(client_of(self), parsed.group, parsed.region).variables or {}
        return ("key", "value"), [(key, columned(variables[key])) for key in sorted(variables)]


class _Members(Command):
    """Base of add-child, remove-child, add-host, remove-host."""

    what = "GROUP"
    method = "add_children"

    def get_parser(self, prog_name: str) -> ArgumentParser:
        parser = _group_parser(super().get_parser(prog_name))
        parser.add_argument("members", metavar=self.what, nargs="+",
                            help="ids or names (of the group's region)")
        return parser

    def take_action(self, parsed: Namespace) -> int:
        group = find_group(client_of(self), parsed.group, parsed.region)
        members = [int(item) if item.isdigit() else item for item in parsed.members]
        getattr(group, self.method)(*members)
        return 0


class AddChild(_Members):
    """Make groups subgroups of GROUP (refused if that would close a cycle)."""


class RemoveChild(_Members):
    """Detach subgroups from GROUP (they are not deleted)."""

    method = "remove_children"


class AddHost(_Members):
    """Add hosts to GROUP."""

    what = "HOST"
    method = "add_hosts"


class RemoveHost(_Members):
    """Remove hosts from GROUP."""

    what = "HOST"
    method = "remove_hosts"
