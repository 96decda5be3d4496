"""craton tenant …"""

from __future__ import annotations

import json
from argparse import ArgumentParser, Namespace
from collections.abc import Iterator
from typing import Any

from cliff.command import Command
from cliff.lister import Lister
from cliff.show import ShowOne

from cratonclient.cli.common import client_of, find_tenant, rows_of, show

COLUMNS = ("id", "name", "description")
SHOWN = ("id", "name", "description", "quotas", "version", "created_at", "updated_at")


class ListTenants(Lister):
    """List the tenants you can see."""

    def take_action(self, parsed: Namespace) -> tuple[tuple[str, ...], Iterator[tuple[Any, ...]]]:
        return COLUMNS, rows_of(client_of(self).tenants.list(), COLUMNS)


class ShowTenant(ShowOne):
    """Show a tenant, with the quotas in force."""

    def get_parser(self, prog_name: str) -> ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("tenant", metavar="TENANT", help="id or name")
        return parser

    def take_action(self, parsed: Namespace) -> tuple[tuple[str, ...], tuple[Any, ...]]:
        return show(find_tenant(client_of(self), parsed.tenant), SHOWN)


class CreateTenant(ShowOne):
    """Create a tenant (cloud admins)."""

    def get_parser(self, prog_name: str) -> ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("name", metavar="NAME")
        parser.add_argument("--description", metavar="TEXT")
        return parser

    def take_action(self, parsed: Namespace) -> tuple[tuple[str, ...], tuple[Any, ...]]:
        fields = {"description": parsed.description} if parsed.description else {}
        return show(client_of(self).tenants.create(parsed.name, **fields), SHOWN)


class SetTenant(Command):
    """Rename a tenant, describe it, or set its quotas (--quota hosts=250000; null: default)."""

    def get_parser(self, prog_name: str) -> ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("tenant", metavar="TENANT", help="id or name")
        parser.add_argument("--name", metavar="NAME")
        parser.add_argument("--description", metavar="TEXT")
        parser.add_argument("--quota", metavar="NAME=N", action="append",
                            help="hosts, groups, secrets or concurrent_jobs (repeatable)")
        return parser

    def take_action(self, parsed: Namespace) -> int:
        tenant = find_tenant(client_of(self), parsed.tenant)
        if parsed.name:
            tenant.name = parsed.name
        if parsed.description is not None:
            tenant.description = parsed.description
        if parsed.quota:
            quotas = {}
            for item in parsed.quota:
                name, _, value = item.partition("=")
                quotas[name] = json.loads(value) if value else None
            tenant.quotas = {**(tenant.quotas or {}), **quotas}
        tenant.save()
        return 0


class DeleteTenant(Command):
    """Delete a tenant (--cascade: with everything in it)."""

    def get_parser(self, prog_name: str) -> ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("tenant", metavar="TENANT", help="id or name")
        parser.add_argument("--cascade", action="store_true")
        return parser

    def take_action(self, parsed: Namespace) -> int:
        find_tenant(client_of(self), parsed.tenant).delete(cascade=parsed.cascade)
        return 0
