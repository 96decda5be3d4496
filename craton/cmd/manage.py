"""craton-manage: operate a Craton installation (database, configuration, demo data, jobs, the
API document)."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from collections.abc import Callable

from craton.config import ConfigError, Settings, load_settings, sample_config
from craton.db import migrate
from craton.db.session import Database, make_engine


def _engine(settings: Settings):
    return make_engine(settings.database_url)


def db_upgrade(settings: Settings, args: argparse.Namespace) -> int:
    engine = _engine(settings)
    try:
        migrate.upgrade(engine, args.revision)
        print(f"database at revision {migrate.current_revision(engine)}")
    finally:
        engine.dispose()
    return 0


def db_downgrade(settings: Settings, args: argparse.Namespace) -> int:
    engine = _engine(settings)
    try:
        migrate.downgrade(engine, args.revision)
        print(f"database at revision {migrate.current_revision(engine) or 'base'}")
    finally:
        engine.dispose()
    return 0


def db_current(settings: Settings, args: argparse.Namespace) -> int:
    engine = _engine(settings)
    try:
        current, head = migrate.current_revision(engine), migrate.head_revision(engine)
        print(f"current: {current or 'base (empty)'}\nhead:    {head}")
        return 0 if current == head else 1
    finally:
        engine.dispose()


def config_sample(settings: Settings | None, args: argparse.Namespace) -> int:
    sys.stdout.write(sample_config())
    return 0


def demo_load(settings: Settings, args: argparse.Namespace) -> int:
    """Create the demo fleet unless it exists; put the demo playbooks (this version's) where a
    job can read them."""
    from craton.demo import DEMO_FORKS, DEMO_PLAYBOOK, install_demo_source, load_demo

    db = Database(settings.database_url)
    try:
        with db.transaction() as session:
            region = load_demo(session, settings)
            region_id, tenant_id = region.id, region.tenant_id
            print(f"demo region {region.name!r} is region {region_id} (tenant {tenant_id})")
    finally:
        db.dispose()
    source = install_demo_source(settings, tenant_id)
    job = {"region_id": region_id, "playbook": DEMO_PLAYBOOK, "source": {"path": str(source)},
           "forks": DEMO_FORKS}
    print(f"demo playbook {DEMO_PLAYBOOK} is in {source}; run it on the fleet with\n"
          f"  POST /v1/jobs {json.dumps(job)}")
    return 0


def jobs_prune(settings: Settings, args: argparse.Namespace) -> int:
    """Delete finished jobs older than --older-than, with their hosts, events, TaskFlow
    logbooks and Redis streams."""
    from craton.jobs.engine import JobSystem
    from craton.jobs.submit import prune_jobs
    from craton.secrets.backends import load_backend
    from craton.sources.fetch import Fetcher

    db = Database(settings.database_url)
    system = JobSystem(settings, db, load_backend(settings), Fetcher(settings))
    try:
        with db.transaction() as session:
            pruned = prune_jobs(session, args.older_than)
        system.forget(pruned)
        print(f"pruned {len(pruned)} job(s)")
    finally:
        system.close()
        db.dispose()
    return 0


def duration(text: str) -> dt.timedelta:
    """'30d', '12h', '90m' or '45s'."""
    units = {"d": "days", "h": "hours", "m": "minutes", "s": "seconds"}
    if len(text) < 2 or text[-1] not in units or not text[:-1].isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration like 30d, 12h, 90m, 45s")
    return dt.timedelta(**{units[text[-1]]: int(text[:-1])})


def openapi(settings: Settings, args: argparse.Namespace) -> int:
    """Print the OpenAPI document (what api-ref/openapi.json holds)."""
    from craton.api import create_app

    app = create_app(settings, database=Database("sqlite://"))
    with app.test_client() as client:
        document = client.get("/v1/openapi.json").get_json()
    sys.stdout.write(json.dumps(document, indent=2, sort_keys=True) + "\n")
    return 0


IMPORT_FORMATS = {".ini": "ini", ".yml": "yaml", ".yaml": "yaml", ".json": "json"}


def import_inventory(settings: Settings, args: argparse.Namespace) -> int:
    """Import an Ansible inventory (a file, or a directory with group_vars/host_vars) into a
    region, as cloud admin, in one transaction; print the plan as JSON."""
    from pathlib import Path

    from craton.context import ADMIN
    from craton.db.models import Region
    from craton.db.scope import get_scoped
    from craton.errors import CratonError
    from craton.inventory import importer

    path = Path(args.path)
    if path.is_dir():
        files = {p.relative_to(path).as_posix(): p.read_text() for p in sorted(path.rglob("*"))
                 if p.is_file()}
        fmt, content = "directory", None
    else:
        fmt = args.format or IMPORT_FORMATS.get(path.suffix.lower(), "ini")
        files, content = None, path.read_text()
    db = Database(settings.database_url)
    try:
        with db.transaction() as session:
            region = get_scoped(session, ADMIN, Region, args.region)
            parsed = importer.parse_inventory(importer.inventory_files(fmt, content, files))
            plan = importer.import_inventory(session, ADMIN, region, parsed,
                                             dry_run=args.dry_run, limits=settings.limits,
                                             quotas=settings.quotas)
    except CratonError as error:
        print(f"craton-manage: {error.message}", file=sys.stderr)
        return 1
    finally:
        db.dispose()
    print(json.dumps(plan.as_dict(), indent=2, ensure_ascii=False))
    return 0


Command = Callable[[Settings, argparse.Namespace], int]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="craton-manage", description=__doc__)
    parser.add_argument("--config", help="configuration file (default: $CRATON_CONFIG or "
                                         "/etc/craton/craton.conf when present)")
    groups = parser.add_subparsers(dest="group", required=True, metavar="COMMAND")

    db = groups.add_parser("db", help="database schema (Alembic migrations)")
    db_commands = db.add_subparsers(dest="command", required=True)
    up = db_commands.add_parser("upgrade", help="migrate to the newest schema (or --revision)")
    up.add_argument("--revision", default="head")
    up.set_defaults(func=db_upgrade)
    down = db_commands.add_parser("downgrade", help="migrate back to --revision (base: empty)")
    down.add_argument("--revision", required=True)
    down.set_defaults(func=db_downgrade)
    db_commands.add_parser("current", help="show the revision; exit 1 if not the newest"
                           ).set_defaults(func=db_current)

    config = groups.add_parser("config", help="configuration")
    config_commands = config.add_subparsers(dest="command", required=True)
    config_commands.add_parser("sample", help="print the documented sample file"
                               ).set_defaults(func=config_sample)

    demo = groups.add_parser("demo", help="demo data")
    demo_commands = demo.add_subparsers(dest="command", required=True)
    demo_commands.add_parser("load", help="create the demo fleet unless it exists; put its "
                                          "playbook (this version's) in the sources root"
                             ).set_defaults(func=demo_load)

    jobs = groups.add_parser("jobs", help="jobs")
    jobs_commands = jobs.add_subparsers(dest="command", required=True)
    prune = jobs_commands.add_parser("prune", help="delete finished jobs older than a duration")
    prune.add_argument("--older-than", type=duration, required=True,
                       help="e.g. 30d (days), 12h, 90m, 45s")
    prune.set_defaults(func=jobs_prune)

    imports = groups.add_parser("import", help="import an Ansible inventory into a region")
    imports.add_argument("region", type=int, help="the region's id")
    imports.add_argument("path", help="an INI, YAML or dynamic-inventory JSON file, or a "
                                      "directory with group_vars/ and host_vars/")
    imports.add_argument("--format", choices=("ini", "yaml", "json"),
                         help="a file's format (default: from its suffix; ini otherwise)")
    imports.add_argument("--dry-run", action="store_true", help="print the plan only")
    imports.set_defaults(func=import_inventory)

    api = groups.add_parser("api", help="the REST API")
    api_commands = api.add_subparsers(dest="command", required=True)
    api_commands.add_parser("openapi", help="print the OpenAPI document"
                            ).set_defaults(func=openapi)
    return parser


NEEDS_SCHEMA = (demo_load, jobs_prune, import_inventory)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings(args.config)
    except ConfigError as error:
        print(f"craton-manage: {error}", file=sys.stderr)
        return 2
    if args.func in NEEDS_SCHEMA:
        problem = migrate.schema_problem_at(settings.database_url)
        if problem:
            print(f"craton-manage: {problem}", file=sys.stderr)
            return 2
    return args.func(settings, args)


if __name__ == "__main__":
    raise SystemExit(main())
