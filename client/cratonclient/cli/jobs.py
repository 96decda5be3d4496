"""craton job …"""

from __future__ import annotations

import os
from argparse import ArgumentParser, Namespace
from collections.abc import Iterator
from typing import Any

from cliff.command import Command
from cliff.lister import Lister
from cliff.show import ShowOne

from cratonclient.cli.app import CommandError
from cratonclient.cli.common import (
    add_host_filters,
    client_of,
    columned,
    host_filter_args,
    parse_vars,
    region_id,
    rows_of,
    show,
)

COLUMNS = ("id", "region_id", "playbook", "status", "progress", "created_by", "started_at",
           "finished_at")
SHOWN = ("id", "region_id", "playbook", "status", "progress", "hosts", "message", "source",
         "filters", "layout", "forks", "check", "diff", "bundle_etag", "created_by",
         "created_at", "started_at", "finished_at", "duration")
HOST_COLUMNS = ("name", "status", "current_task", "message", "started_at", "finished_at")


class ListJobs(Lister):
    """Recent jobs."""

    def get_parser(self, prog_name: str) -> ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("--region", metavar="REGION", help="id or name")
        parser.add_argument("--status", action="append",
                            choices=("pending", "running", "succeeded", "failed", "cancelled"))
        return parser

    def take_action(self, parsed: Namespace) -> tuple[tuple[str, ...], Iterator[tuple[Any, ...]]]:
        client = client_of(self)
        jobs = client.jobs.list(region=region_id(client, parsed.region), status=parsed.status)
        return COLUMNS, rows_of(jobs, COLUMNS)


class ShowJob(ShowOne):
    """Show a job: status, hosts per state, progress."""

    def get_parser(self, prog_name: str) -> ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("job", metavar="JOB", type=int)
        return parser

    def take_action(self, parsed: Namespace) -> tuple[tuple[str, ...], tuple[Any, ...]]:
        return show(client_of(self).jobs.get(parsed.job), SHOWN)


def _watch(command: Command, job_id: int) -> int:
    from cratonclient.cli.watch import watch

    return watch(client_of(command), job_id, command.app.stdout)


class RunJob(Command):
    """Run a playbook over a selection of a region (--watch: follow it live).

    With --watch the exit status is 0 only when every host succeeded."""

    def get_parser(self, prog_name: str) -> ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("region", metavar="REGION", help="id or name")
        parser.add_argument("playbook", metavar="PLAYBOOK",
                            help="a path inside the source, or craton:ping")
        parser.add_argument("--source", metavar="URL|PATH",
                            help="a git repository URL (with --ref), or an absolute directory "
                                 "the server may read")
        parser.add_argument("--ref", metavar="REF", help="git branch, tag or commit")
        add_host_filters(parser)
        parser.add_argument("--forks", type=int)
        parser.add_argument("--layout", choices=("hosts", "ansible"))
        parser.add_argument("--check", action="store_true", help="dry run (Ansible's --check)")
        parser.add_argument("--diff", action="store_true")
        parser.add_argument("--extra-var", metavar="KEY=VALUE", action="append")
        parser.add_argument("--watch", action="store_true", help="follow the job to its end")
        return parser

    def take_action(self, parsed: Namespace) -> int:
        client = client_of(self)
        source: dict[str, Any] | None = None
        if parsed.source:
            if "://" in parsed.source or parsed.source.startswith("git@"):
                source = {"url": parsed.source, **({"ref": parsed.ref} if parsed.ref else {})}
            else:
                if parsed.ref:
                    raise CommandError("--ref applies to a git URL, not a directory")
                source = {"path": os.path.abspath(parsed.source)}
        fields: dict[str, Any] = {"check": parsed.check, "diff": parsed.diff}
        if parsed.forks:
            fields["forks"] = parsed.forks
        if parsed.layout:
            fields["layout"] = parsed.layout
        if parsed.extra_var:
            fields["extra_vars"] = parse_vars(parsed.extra_var)
        filters = {key: value for key, value in host_filter_args(parsed).items()
                   if value is not None}
        job = client.jobs.submit(region_id(client, parsed.region) or 0, parsed.playbook,
                                 source=source, filters=filters, **fields)
        if parsed.watch:
            return _watch(self, job.id)
        self.app.stdout.write(f"job {job.id} {job.status}\n")
        return 0


class WatchJob(Command):
    """Follow a job live: progress by host state, failures as they happen, a summary.

    Exit status 0 only when every host succeeded."""

    def get_parser(self, prog_name: str) -> ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("job", metavar="JOB", type=int)
        return parser

    def take_action(self, parsed: Namespace) -> int:
        return _watch(self, parsed.job)


class CancelJob(ShowOne):
    """Cancel a job: running hosts stop within seconds."""

    def get_parser(self, prog_name: str) -> ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("job", metavar="JOB", type=int)
        return parser

    def take_action(self, parsed: Namespace) -> tuple[tuple[str, ...], tuple[Any, ...]]:
        return show(client_of(self).jobs.cancel(parsed.job), ("id", "status", "cancel_requested"))


class JobHosts(Lister):
    """Each host of a job: state, current task, Ansible's message."""

    def get_parser(self, prog_name: str) -> ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("job", metavar="JOB", type=int)
        parser.add_argument("--status", action="append",
                            choices=("pending", "running", "ok", "changed", "failed",
                                     "unreachable", "skipped"))
        return parser

    def take_action(self, parsed: Namespace) -> tuple[tuple[str, ...], Iterator[tuple[Any, ...]]]:
        hosts = client_of(self).jobs.hosts(parsed.job, status=parsed.status)
        return HOST_COLUMNS, rows_of(hosts, HOST_COLUMNS)


class JobEvents(Lister):
    """A job's recorded events (after a sequence number)."""

    def get_parser(self, prog_name: str) -> ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("job", metavar="JOB", type=int)
        parser.add_argument("--after", type=int, metavar="SEQ")
        return parser

    def take_action(self, parsed: Namespace) -> tuple[tuple[str, ...], Iterator[tuple[Any, ...]]]:
        events = client_of(self).jobs.events(parsed.job, after=parsed.after)
        columns = ("seq", "kind", "host", "created_at", "data")
        return columns, ((e.seq, e.kind, e.host, e.created_at, columned(e.data))
                         for e in events)
