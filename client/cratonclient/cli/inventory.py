"""craton inventory get"""

from __future__ import annotations

from argparse import ArgumentParser, Namespace
from typing import Any

from cliff.show import ShowOne

from cratonclient.cli.common import add_host_filters, client_of, host_filter_args, region_id


class GetInventory(ShowOne):
    """Fetch a region's inventory bundle (filtered like host list) into DIR.

    An unchanged bundle is not downloaded again."""

    def get_parser(self, prog_name: str) -> ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("region", metavar="REGION", help="id or name")
        parser.add_argument("-o", "--output", metavar="DIR", required=True,
                            help="directory to extract into (replaced), or the file to write "
                                 "with --archive")
        parser.add_argument("--layout", choices=("hosts", "ansible"),
                            help="hosts (default): one private data directory per host; "
                                 "ansible: one inventory for ansible-playbook -i")
        parser.add_argument("--archive", choices=("tgz", "zip", "json"),
                            help="write the archive itself (or the JSON inventory) to the "
                                 "file instead of extracting it")
        add_host_filters(parser)
        return parser

    def take_action(self, parsed: Namespace) -> tuple[tuple[str, ...], tuple[Any, ...]]:
        client = client_of(self)
        region = region_id(client, parsed.region) or 0
        filters = host_filter_args(parsed)
        if parsed.archive:
            bundle = client.inventory.download(region, parsed.output, fmt=parsed.archive,
                                               layout=parsed.layout, **filters)
        else:
            bundle = client.inventory.extract(region, parsed.output, layout=parsed.layout,
                                              **filters)
        return ("path", "etag", "changed"), (str(bundle.path), bundle.etag, bundle.changed)
