"""``craton``: the command-line client, built on cliff (the OpenStack CLI's framework).

Start-up time matters (``craton host list`` must answer in well under half a second), so
nothing heavy is imported here: each command's module is imported when that command runs (or
when ``--help`` lists it), and the HTTP client only when a command first talks to the API.
"""

from __future__ import annotations

import logging
import os
import sys
from argparse import ArgumentParser
from typing import TYPE_CHECKING, Any

from cliff.app import App
from cliff.commandmanager import CommandManager

from cratonclient import __version__

if TYPE_CHECKING:
    from cliff.command import Command

    from cratonclient.client import Client

COMMANDS: dict[str, str] = {
    "tenant list": "tenants:ListTenants",
    "tenant show": "tenants:ShowTenant",
    "tenant create": "tenants:CreateTenant",
    "tenant set": "tenants:SetTenant",
    "tenant delete": "tenants:DeleteTenant",
    "region list": "regions:ListRegions",
    "region show": "regions:ShowRegion",
    "region create": "regions:CreateRegion",
    "region set": "regions:SetRegion",
    "region delete": "regions:DeleteRegion",
    "region vars": "regions:RegionVars",
    "region import": "regions:ImportInventory",
    "group list": "groups:ListGroups",
    "group show": "groups:ShowGroup",
    "group create": "groups:CreateGroup",
    "group set": "groups:SetGroup",
    "group delete": "groups:DeleteGroup",
    "group vars": "groups:GroupVars",
    "group add-child": "groups:AddChild",
    "group remove-child": "groups:RemoveChild",
    "group add-host": "groups:AddHost",
    "group remove-host": "groups:RemoveHost",
    "host list": "hosts:ListHosts",
    "host show": "hosts:ShowHost",
    "host create": "hosts:CreateHost",
    "host import": "hosts:ImportHosts",
    "host set": "hosts:SetHost",
    "host delete": "hosts:DeleteHost",
    "host vars": "hosts:HostVars",
    "host status": "hosts:HostStatus",
    "secret list": "secrets:ListSecrets",
    "secret show": "secrets:ShowSecret",
    "secret create": "secrets:CreateSecret",
    "secret reveal": "secrets:RevealSecret",
    "secret delete": "secrets:DeleteSecret",
    "reference list": "secrets:ListReferences",
    "reference show": "secrets:ShowReference",
    "reference create": "secrets:CreateReference",
    "reference set": "secrets:SetReference",
    "reference delete": "secrets:DeleteReference",
    "apikey list": "secrets:ListApiKeys",
    "apikey show": "secrets:ShowApiKey",
    "apikey create": "secrets:CreateApiKey",
    "apikey revoke": "secrets:RevokeApiKey",
    "inventory get": "inventory:GetInventory",
    "job list": "jobs:ListJobs",
    "job show": "jobs:ShowJob",
    "job run": "jobs:RunJob",
    "job watch": "jobs:WatchJob",
    "job cancel": "jobs:CancelJob",
    "job hosts": "jobs:JobHosts",
    "job events": "jobs:JobEvents",
}
"""Every command, and where its class lives (in cratonclient.cli)."""


class LazyCommand:
    """An entry point that imports its command's module only when the command is used."""

    def __init__(self, name: str, target: str) -> None:
        self.name = name
        self.value = f"cratonclient.cli.{target}"

    def load(self) -> type[Command]:
        import importlib

        module, _, attribute = self.value.partition(":")
        return getattr(importlib.import_module(module), attribute)  # type: ignore[no-any-return]


class CratonApp(App):
    """The ``craton`` application: global options, and the API client commands share."""

    def __init__(self) -> None:
        manager = CommandManager(None)
        for name, target in COMMANDS.items():
            manager.commands[name] = LazyCommand(name, target)  # type: ignore[assignment]
        super().__init__(
            description="Command-line client for Craton, the fleet inventory and Ansible "
                        "execution service.",
            version=__version__, command_manager=manager, deferred_help=True)
        self._client: Client | None = None

    def build_option_parser(self, description: str | None, version: str | None,
                            argparse_kwargs: dict[str, Any] | None = None) -> ArgumentParser:
        parser = super().build_option_parser(description, version, argparse_kwargs)
        env = os.environ.get
        group = parser.add_argument_group("Craton API")
        group.add_argument("--url", metavar="URL", default=env("CRATON_URL"),
                           help="the API's root, e.g. http://127.0.0.1:7780 "
                                "(env CRATON_URL)")
        group.add_argument("--api-key", metavar="KEY", default=env("CRATON_API_KEY"),
                           help="an API key (env CRATON_API_KEY); none for a noauth server")
        group.add_argument("--tenant", metavar="ID", default=env("CRATON_TENANT"),
                           help="act inside this tenant (noauth servers only; env "
                                "CRATON_TENANT)")
        group.add_argument("--os-cloud", metavar="CLOUD", default=env("OS_CLOUD"),
                           help="authenticate with Keystone as clouds.yaml names it (env "
                                "OS_CLOUD); OS_AUTH_URL and the other OS_* variables also "
                                "work")
        group.add_argument("--os-cacert", "--cacert", dest="cacert", metavar="FILE",
                           default=env("CRATON_CACERT") or env("OS_CACERT"),
                           help="CA bundle to verify the server's TLS certificate with")
        group.add_argument("--insecure", action="store_true",
                           help="do not verify the server's TLS certificate")
        group.add_argument("--timeout", type=float, default=float(env("CRATON_TIMEOUT", 60)),
                           metavar="SECONDS", help="how long to wait for an answer (default 60)")
        return parser

    def initialize_app(self, argv: list[str]) -> None:
        http = logging.getLogger("cratonclient.http")
        # cliff sets the root logger to DEBUG (its handler filters): without this every
        # exchange would be formatted for nobody.
        http.setLevel(logging.WARNING)
        if self.options.debug:
            handler = logging.StreamHandler(self.stderr)
            handler.setFormatter(logging.Formatter("%(message)s"))
            http.addHandler(handler)
            http.setLevel(logging.DEBUG)
            http.propagate = False

    def print_help_if_requested(self) -> None:
        """``craton --help``: the options and every command with its one-line summary.

        cliff's own listing also names the distribution of each command, which reads the
        metadata of every installed distribution (about half a second in a big
        virtualenv); Craton's commands all come from this one, so that is left out.
        """
        if not (self.deferred_help and self.options.deferred_help):
            return
        from cliff.help import HelpExit

        self.parser.print_help(self.stdout)
        self.stdout.write("\nCommands:\n")
        for name, entry in sorted(self.command_manager):
            doc = (entry.load().__doc__ or "").strip().split("\n")[0].rstrip(".")
            self.stdout.write(f"  {name:<18} {doc}\n")
        raise HelpExit()

    @property
    def client(self) -> Client:
        """The API client the options and environment describe, made on first use."""
        if self._client is None:
            from cratonclient.client import Client

            options = self.options
            verify: bool | str = False if options.insecure else (options.cacert or True)
            settings: dict[str, Any] = {"verify": verify, "timeout": (10.0, options.timeout)}
            if options.api_key or not (options.os_cloud or os.environ.get("OS_AUTH_URL")):
                if not options.url:
                    raise CommandError("say where Craton is: --url or CRATON_URL (with "
                                       "--api-key/CRATON_API_KEY, or --os-cloud)")
                self._client = Client(options.url, options.api_key, tenant=options.tenant,
                                      **settings)
            else:
                self._client = Client.from_cloud(options.os_cloud, url=options.url,
                                                 **settings)
        return self._client

    def clean_up(self, cmd: Command, result: int, err: BaseException | None) -> None:
        if self._client is not None:
            self._client.close()


class CommandError(Exception):
    """A mistake in what the user asked: printed as it is, without a traceback."""


def main(argv: list[str] | None = None) -> int:
    return CratonApp().run(sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    sys.exit(main())
