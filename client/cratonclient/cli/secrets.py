"""craton secret …, craton reference …, craton apikey …"""

from __future__ import annotations

import sys
from argparse import ArgumentParser, Namespace
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cliff.command import Command
from cliff.lister import Lister
from cliff.show import ShowOne

from cratonclient.cli.common import (
    add_region_option,
    client_of,
    find_group,
    find_host,
    find_tenant,
    rows_of,
    show,
)

SECRET_COLUMNS = ("id", "name", "kind", "size", "host_id")
SECRET_SHOWN = (*SECRET_COLUMNS, "version", "created_at", "updated_at")
REFERENCE_COLUMNS = ("id", "name", "url", "ref", "path", "group_id")
REFERENCE_SHOWN = (*REFERENCE_COLUMNS, "version", "created_at", "updated_at")
APIKEY_COLUMNS = ("id", "name", "role", "prefix", "tenant_id", "expires_at", "last_used_at",
                  "revoked_at")


def _with(parser: ArgumentParser, name: str, help: str) -> ArgumentParser:
    parser.add_argument(name, metavar=name.upper(), help=help)
    return parser


class ListSecrets(Lister):
    """A host's secrets (never their content)."""

    def get_parser(self, prog_name: str) -> ArgumentParser:
        parser = _with(super().get_parser(prog_name), "host", "id or name")
        add_region_option(parser)
        return parser

    def take_action(self, parsed: Namespace) -> tuple[tuple[str, ...], Iterator[tuple[Any, ...]]]:
        host = find_host(client_of(self), parsed.host, parsed.region)
        return SECRET_COLUMNS, rows_of(host.secrets(), SECRET_COLUMNS)


class ShowSecret(ShowOne):
    """Show a secret's metadata."""

    def get_parser(self, prog_name: str) -> ArgumentParser:
        return _with(super().get_parser(prog_name), "secret", "id")

    def take_action(self, parsed: Namespace) -> tuple[tuple[str, ...], tuple[Any, ...]]:
        return show(client_of(self).secrets.get(int(parsed.secret)), SECRET_SHOWN)


class CreateSecret(ShowOne):
    """Keep a secret for a host (an SSH key, a certificate), read from a file or stdin."""

    def get_parser(self, prog_name: str) -> ArgumentParser:
        parser = _with(super().get_parser(prog_name), "host", "id or name")
        add_region_option(parser)
        parser.add_argument("name", metavar="NAME")
        parser.add_argument("--kind", default="opaque",
                            choices=("ssh_private_key", "pem", "password", "opaque"))
        parser.add_argument("--file", metavar="FILE", required=True,
                            help='its content ("-": stdin)')
        return parser

    def take_action(self, parsed: Namespace) -> tuple[tuple[str, ...], tuple[Any, ...]]:
        content = sys.stdin.read() if parsed.file == "-" else Path(parsed.file).read_text()
        host = find_host(client_of(self), parsed.host, parsed.region)
        return show(host.create_secret(parsed.name, content, kind=parsed.kind), SECRET_SHOWN)


class RevealSecret(Command):
    """Print a secret's content (admins of its tenant)."""

    def get_parser(self, prog_name: str) -> ArgumentParser:
        return _with(super().get_parser(prog_name), "secret", "id")

    def take_action(self, parsed: Namespace) -> int:
        self.app.stdout.write(client_of(self).secrets.reveal(int(parsed.secret)))
        return 0


class DeleteSecret(Command):
    """Delete a secret."""

    def get_parser(self, prog_name: str) -> ArgumentParser:
        return _with(super().get_parser(prog_name), "secret", "id")

    def take_action(self, parsed: Namespace) -> int:
        client_of(self).secrets.delete(int(parsed.secret))
        return 0


class ListReferences(Lister):
    """A group's references (variables files in git, over http(s), or file://)."""

    def get_parser(self, prog_name: str) -> ArgumentParser:
        parser = _with(super().get_parser(prog_name), "group", "id or name")
        add_region_option(parser)
        return parser

    def take_action(self, parsed: Namespace) -> tuple[tuple[str, ...], Iterator[tuple[Any, ...]]]:
        group = find_group(client_of(self), parsed.group, parsed.region)
        return REFERENCE_COLUMNS, rows_of(group.references(), REFERENCE_COLUMNS)


class ShowReference(ShowOne):
    """Show a reference."""

    def get_parser(self, prog_name: str) -> ArgumentParser:
        return _with(super().get_parser(prog_name), "reference", "id")

    def take_action(self, parsed: Namespace) -> tuple[tuple[str, ...], tuple[Any, ...]]:
        return show(client_of(self).references.get(int(parsed.reference)), REFERENCE_SHOWN)


class CreateReference(ShowOne):
    """Add a reference to a group: its variables come from URL (a git ref and path in it)."""

    def get_parser(self, prog_name: str) -> ArgumentParser:
        parser = _with(super().get_parser(prog_name), "group", "id or name")
        add_region_option(parser)
        parser.add_argument("name", metavar="NAME")
        parser.add_argument("url", metavar="URL")
        parser.add_argument("--ref", metavar="REF", help="a git branch, tag or commit")
        parser.add_argument("--path", metavar="PATH", help="the file inside a git repository")
        return parser

    def take_action(self, parsed: Namespace) -> tuple[tuple[str, ...], tuple[Any, ...]]:
        group = find_group(client_of(self), parsed.group, parsed.region)
        fields = {key: value for key, value in (("ref", parsed.ref), ("path", parsed.path))
                  if value}
        return show(group.create_reference(parsed.name, parsed.url, **fields), REFERENCE_SHOWN)


class SetReference(Command):
    """Change a reference's name, URL, ref or path."""

    def get_parser(self, prog_name: str) -> ArgumentParser:
        parser = _with(super().get_parser(prog_name), "reference", "id")
        for option in ("--name", "--url", "--ref", "--path"):
            parser.add_argument(option)
        return parser

    def take_action(self, parsed: Namespace) -> int:
        reference = client_of(self).references.get(int(parsed.reference))
        for name in ("name", "url", "ref", "path"):
            if getattr(parsed, name) is not None:
                setattr(reference, name, getattr(parsed, name))
        reference.save()
        return 0


class DeleteReference(Command):
    """Delete a reference."""

    def get_parser(self, prog_name: str) -> ArgumentParser:
        return _with(super().get_parser(prog_name), "reference", "id")

    def take_action(self, parsed: Namespace) -> int:
        client_of(self).references.delete(int(parsed.reference))
        return 0


class ListApiKeys(Lister):
    """A tenant's API keys (never the keys themselves)."""

    def get_parser(self, prog_name: str) -> ArgumentParser:
        return _with(super().get_parser(prog_name), "tenant_ref", "tenant id or name")

    def take_action(self, parsed: Namespace) -> tuple[tuple[str, ...], Iterator[tuple[Any, ...]]]:
        client = client_of(self)
        tenant = find_tenant(client, parsed.tenant_ref)
        return APIKEY_COLUMNS, rows_of(client.apikeys.list(tenant.id), APIKEY_COLUMNS)


class ShowApiKey(ShowOne):
    """Show an API key's record."""

    def get_parser(self, prog_name: str) -> ArgumentParser:
        return _with(super().get_parser(prog_name), "apikey", "id")

    def take_action(self, parsed: Namespace) -> tuple[tuple[str, ...], tuple[Any, ...]]:
        return show(client_of(self).apikeys.get(int(parsed.apikey)),
                    (*APIKEY_COLUMNS, "created_by", "created_at"))


class CreateApiKey(ShowOne):
    """Make a tenant API key (tenant admins); the key is shown this once."""

    def get_parser(self, prog_name: str) -> ArgumentParser:
        parser = _with(super().get_parser(prog_name), "tenant_ref", "tenant id or name")
        parser.add_argument("--name", required=True)
        parser.add_argument("--role", required=True, choices=("reader", "member", "admin"))
        parser.add_argument("--expires-at", metavar="TIME",
                            help="ISO 8601, e.g. 2027-01-01T00:00:00Z")
        return parser

    def take_action(self, parsed: Namespace) -> tuple[tuple[str, ...], tuple[Any, ...]]:
        client = client_of(self)
        tenant = find_tenant(client, parsed.tenant_ref)
        made = client.apikeys.create(tenant.id, parsed.name, parsed.role,
                                     expires_at=parsed.expires_at)
        return show(made, ("id", "name", "role", "tenant_id", "expires_at", "key"))


class RevokeApiKey(Command):
    """Revoke an API key."""

    def get_parser(self, prog_name: str) -> ArgumentParser:
        return _with(super().get_parser(prog_name), "apikey", "id")

    def take_action(self, parsed: Namespace) -> int:
        client_of(self).apikeys.revoke(int(parsed.apikey))
        return 0
