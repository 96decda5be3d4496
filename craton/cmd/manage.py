"""craton-manage: operate a Craton installation (database, configuration, demo data, jobs, the
API document)."""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from craton.config import ConfigError, Settings, load_settings, sample_config
from craton.context import RequestContext
from craton.db import migrate
from craton.db.session import Database, make_engine

if TYPE_CHECKING:
    from sqlalchemy.orm import Session


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
    from craton.identity.keystone import authtoken_sample

    sys.stdout.write(sample_config() + "\n" + authtoken_sample())
    return 0


def demo_load(settings: Settings, args: argparse.Namespace) -> int:
    """Create the demo fleet unless it exists; put the demo playbooks (this version's) where a
    job can read them."""
    from craton.demo import DEMO_FORKS, DEMO_PLAYBOOK, install_demo_source, load_demo

    with Database(settings.database_url) as db, db.transaction() as session:
        _recorded_as_operator(session)
        region = load_demo(session, settings)
        region_id, tenant_id = region.id, region.tenant_id
        print(f"demo region {region.name!r} is region {region_id} (tenant {tenant_id})")
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

    with Database(settings.database_url) as db:
        system = JobSystem(settings, db, load_backend(settings), Fetcher(settings))
        try:
            with db.transaction() as session:
                pruned = prune_jobs(session, args.older_than)
            system.forget(pruned)
            print(f"pruned {len(pruned)} job(s)")
        finally:
            system.close()
    return 0


def changes_prune(settings: Settings, args: argparse.Namespace) -> int:
    """Delete change records older than --older-than, else than [changes] retention_days."""
    from craton.db import changes
    from craton.values import utcnow

    older_than = args.older_than
    if older_than is None and settings.changes.retention_days:
        older_than = dt.timedelta(days=settings.changes.retention_days)
    if older_than is None:
        print("[changes] retention_days is 0 (keep every record) and no --older-than was given: "
              "nothing pruned")
        return 0
    cutoff = utcnow() - older_than
    with Database(settings.database_url) as db:
        pruned = changes.prune(db, cutoff)
    print(f"pruned {pruned} change record(s) made before {cutoff:%Y-%m-%d %H:%M:%S} UTC")
    return 0


def _recorded_as_operator(session: Session) -> None:
    """Record the changes ``session`` makes as the operator's who runs craton-manage."""
    from craton.db import changes

    changes.attribute(session, changes.Actor(user=_operator().user))


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
    from craton.secrets.backends import load_backend

    path = Path(args.path)
    if path.is_dir():
        files = {p.relative_to(path).as_posix(): p.read_text() for p in sorted(path.rglob("*"))
                 if p.is_file()}
        fmt, content = "directory", None
    else:
        fmt = args.format or IMPORT_FORMATS.get(path.suffix.lower(), "ini")
        files, content = None, path.read_text()
    try:
        with Database(settings.database_url) as db, db.transaction() as session:
            _recorded_as_operator(session)
            region = get_scoped(session, ADMIN, Region, args.region)
            parsed = importer.parse_inventory(importer.inventory_files(fmt, content, files))
            plan = importer.import_inventory(session, ADMIN, region, parsed,
                                             dry_run=args.dry_run, limits=settings.limits,
                                             quotas=settings.quotas,
                                             sealer=load_backend(settings))
    except CratonError as error:
        print(f"craton-manage: {error.message}", file=sys.stderr)
        return 1
    print(json.dumps(plan.as_dict(), indent=2, ensure_ascii=False))
    return 0


def _operator() -> RequestContext:
    """The cloud-admin context of the operator running craton-manage, named in what it makes."""
    import getpass

    from craton.context import ADMIN

    return dataclasses.replace(ADMIN, user=f"craton-manage ({getpass.getuser()})")


def apikey_create(settings: Settings, args: argparse.Namespace) -> int:
    """Make an API key and print it, this once: Craton keeps only a keyed hash of it."""
    from sqlalchemy import select

    from craton.db.models import Tenant
    from craton.errors import CratonError
    from craton.identity import apikeys
    from craton.values import utcnow

    hash_key = apikeys.read_or_create_hash_key(settings.apikey_hash_key_file)
    expires_at = utcnow() + args.expires if args.expires else None
    try:
        with Database(settings.database_url) as db, db.transaction() as session:
            _recorded_as_operator(session)
            tenant_id = None
            if not args.cloud_admin:
                column = Tenant.id if args.tenant.isdigit() else Tenant.name
                tenant_id = session.scalar(select(Tenant.id).where(column == args.tenant))
                if tenant_id is None:
                    print(f"craton-manage: no tenant {args.tenant!r}", file=sys.stderr)
                    return 1
            row, key = apikeys.create_key(session, _operator(), hash_key, tenant_id=tenant_id,
                                          name=args.name, role=args.role, expires_at=expires_at)
            whom = "cloud admin" if tenant_id is None else f"{row.role} of tenant {tenant_id}"
            described = (f"API key {row.id} {row.name!r} ({whom}), "
                         + (f"expires {row.expires_at:%Y-%m-%d %H:%M} UTC" if expires_at
                            else "never expires"))
    except CratonError as error:
        print(f"craton-manage: {error.message}", file=sys.stderr)
        return 1
    print(f"{described}. It is shown this once; keep it now:", file=sys.stderr)
    print(key)
    return 0


def apikey_list(settings: Settings, args: argparse.Namespace) -> int:
    """The API keys (of --tenant, or all), without their secrets, which Craton does not keep."""
    from sqlalchemy import select

    from craton.db.models import ApiKey

    with Database(settings.database_url) as db, db.transaction(write=False) as session:
        stmt = select(ApiKey).order_by(ApiKey.id)
        if args.tenant is not None:
            stmt = stmt.where(ApiKey.tenant_id == args.tenant)
        rows = list(session.scalars(stmt))
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)

    def when(moment: dt.datetime | None) -> str:
        return "-" if moment is None else f"{moment:%Y-%m-%d %H:%M}"

    print(f"{'ID':>5}  {'KEY':<23}  {'TENANT':<11}  {'ROLE':<6}  {'STATE':<7}  "
          f"{'CREATED':<16}  {'LAST USED':<16}  {'EXPIRES':<16}  NAME")
    for row in rows:
        state = ("revoked" if row.revoked_at else
                 "expired" if row.expires_at and row.expires_at <= now else "active")
        tenant = "cloud-admin" if row.tenant_id is None else str(row.tenant_id)
        print(f"{row.id:>5}  craton_{row.key_id:<16}  {tenant:<11}  {row.role:<6}  "
              f"{state:<7}  {when(row.created_at):<16}  {when(row.last_used_at):<16}  "
              f"{when(row.expires_at):<16}  {row.name}")
    return 0


def apikey_revoke(settings: Settings, args: argparse.Namespace) -> int:
    """Revoke an API key: requests with it answer 401 from now on."""
    from craton.db.models import ApiKey
    from craton.identity import apikeys

    with Database(settings.database_url) as db, db.transaction() as session:
        _recorded_as_operator(session)
        row = session.get(ApiKey, args.id)
        if row is None:
            print(f"craton-manage: no API key {args.id}", file=sys.stderr)
            return 1
        apikeys.revoke_key(session, _operator(), row)
        print(f"API key {row.id} {row.name!r} revoked")
    return 0


def secrets_migrate(settings: Settings, args: argparse.Namespace) -> int:
    """Move every secret's content to --to, one secret per transaction: an interrupted run
    (Barbican down, the process stopped) resumes where it stopped when run again."""
    from sqlalchemy import func, select

    from craton.db.models import Secret
    from craton.errors import CratonError
    from craton.secrets import outbox
    from craton.secrets import store as secret_store
    from craton.secrets.backends import load_backend

    store = load_backend(settings)
    target = store.barbican if args.to == "barbican" else store.local
    if target is None:
        print("craton-manage: [barbican] is not configured (auth_url, username, password)",
              file=sys.stderr)
        return 2
    db = Database(settings.database_url)
    outbox.attach(db, store)
    moved, last_id = 0, 0
    try:
        while True:
            with db.transaction() as session:
                secret = session.scalar(
                    select(Secret).where(Secret.backend != target.name, Secret.id > last_id)
                    .order_by(Secret.id).limit(1).with_for_update())
                if secret is None:
                    break
                last_id = secret.id
                secret_store.move_content(session, secret, store, target)
            moved += 1
            if moved % 100 == 0:
                print(f"moved {moved} secrets so far", file=sys.stderr)
    except CratonError as error:
        print(f"craton-manage: {error.message}; moved {moved} secrets before that — run the "
              "same command again to go on", file=sys.stderr)
        return 1
    finally:
        with db.transaction(write=False) as session:
            left = session.scalar(select(func.count()).select_from(Secret)
                                  .where(Secret.backend != target.name))
        db.dispose()
    print(f"moved {moved} secrets to {target.name}; {left} kept elsewhere")
    return 0


def secrets_purge(settings: Settings, args: argparse.Namespace) -> int:
    """Delete the payloads kept in Barbican for secrets and sensitive variables that are gone
    (those whose delete failed when they went): exit status 1 while some remain."""
    from craton.secrets import outbox
    from craton.secrets.backends import load_backend

    db = Database(settings.database_url)
    try:
        drained = outbox.purge(db, load_backend(settings))
        left = len(outbox.pending(db, limit=1_000_000))
    finally:
        db.dispose()
    print(f"deleted {drained.deleted} payloads of deleted secrets; {left} still to delete")
    if left:
        print(f"craton-manage: {left} payloads could not be deleted yet"
              + (f" ({drained.error})" if drained.error else "")
              + " — run the same command again later", file=sys.stderr)
        return 1
    return 0


def tenant_create(settings: Settings, args: argparse.Namespace) -> int:
    """Create a tenant, for a Keystone project when --keystone-project names one."""
    from craton.errors import CratonError
    from craton.inventory import tenancy

    try:
        with Database(settings.database_url) as db, db.transaction() as session:
            tenant = tenancy.create_tenant(session, _operator(), {
                "name": args.name, "description": args.description,
                "keystone_project_id": args.keystone_project})
            print(f"tenant {tenant.id} {tenant.name!r}" + (
                f" for Keystone project {tenant.keystone_project_id}"
                if tenant.keystone_project_id else ""))
    except CratonError as error:
        print(f"craton-manage: {error.message}", file=sys.stderr)
        return 1
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

    changes = groups.add_parser("changes", help="change records")
    changes_commands = changes.add_subparsers(dest="command", required=True)
    prune_changes = changes_commands.add_parser(
        "prune", help="delete change records older than [changes] retention_days")
    prune_changes.add_argument("--older-than", type=duration,
                               help="e.g. 90d; default: [changes] retention_days")
    prune_changes.set_defaults(func=changes_prune)

    imports = groups.add_parser("import", help="import an Ansible inventory into a region")
    imports.add_argument("region", type=int, help="the region's id")
    imports.add_argument("path", help="an INI, YAML or dynamic-inventory JSON file, or a "
                                      "directory with group_vars/ and host_vars/")
    imports.add_argument("--format", choices=("ini", "yaml", "json"),
                         help="a file's format (default: from its suffix; ini otherwise)")
    imports.add_argument("--dry-run", action="store_true", help="print the plan only")
    imports.set_defaults(func=import_inventory)

    apikey = groups.add_parser("apikey", help="API keys ([api] auth_strategy = apikey)")
    apikey_commands = apikey.add_subparsers(dest="command", required=True)
    create = apikey_commands.add_parser(
        "create", help="make an API key and print it (this once)",
        description="Make an API key and print it on stdout, this once: Craton keeps only a "
                    "keyed hash of it. A key belongs to one tenant with one role; "
                    "--cloud-admin makes a key that acts as cloud admin across all tenants "
                    "(only craton-manage makes those).")
    whose = create.add_mutually_exclusive_group(required=True)
    whose.add_argument("--tenant", help="the tenant's id or name")
    whose.add_argument("--cloud-admin", action="store_true",
                       help="a cloud-admin key (all tenants, every operation)")
    create.add_argument("--role", choices=("reader", "member", "admin"),
                        help="the key's role in its tenant (a cloud-admin key is admin)")
    create.add_argument("--name", required=True, help="what the key is for (shown in lists)")
    create.add_argument("--expires", type=duration,
                        help="lifetime, e.g. 90d, 12h (default: never expires)")
    create.set_defaults(func=apikey_create)
    listing = apikey_commands.add_parser("list", help="list API keys (never their secrets)")
    listing.add_argument("--tenant", type=int, help="only this tenant's (its id)")
    listing.set_defaults(func=apikey_list)
    revoke = apikey_commands.add_parser("revoke", help="revoke an API key (by its id)")
    revoke.add_argument("id", type=int)
    revoke.set_defaults(func=apikey_revoke)

    secrets = groups.add_parser("secrets", help="secret content")
    secrets_commands = secrets.add_subparsers(dest="command", required=True)
    migrate_secrets = secrets_commands.add_parser(
        "migrate", help="move every secret's content to Barbican (or back); resumable",
        description="Move every secret's content to --to, one secret at a time; run it again "
                    "after an interruption to go on. Set [secrets] backend to the same place "
                    "first, so new secrets go there too.")
    migrate_secrets.add_argument("--to", choices=("barbican", "local"), required=True)
    migrate_secrets.set_defaults(func=secrets_migrate)
    purge_secrets = secrets_commands.add_parser(
        "purge", help="delete payloads left in Barbican by deleted secrets",
        description="Delete from Barbican the payloads of secrets and sensitive variables that "
                    "are gone but whose delete failed then (Barbican was down): each is "
                    "recorded when its row goes, and tried again after later deletes, when "
                    "craton-api starts, and by this command. Exit status 1 while some remain.")
    purge_secrets.set_defaults(func=secrets_purge)

    tenant = groups.add_parser("tenant", help="tenants")
    tenant_commands = tenant.add_subparsers(dest="command", required=True)
    make = tenant_commands.add_parser(
        "create", help="create a tenant (for a Keystone project with --keystone-project)")
    make.add_argument("name")
    make.add_argument("--description")
    make.add_argument("--keystone-project", metavar="PROJECT_ID",
                      help="the id of the Keystone project whose tokens act in the tenant "
                           "([api] auth_strategy = keystone)")
    make.set_defaults(func=tenant_create)

    api = groups.add_parser("api", help="the REST API")
    api_commands = api.add_subparsers(dest="command", required=True)
    api_commands.add_parser("openapi", help="print the OpenAPI document"
                            ).set_defaults(func=openapi)
    return parser


NEEDS_SCHEMA = (demo_load, jobs_prune, import_inventory, apikey_create, apikey_list,
                apikey_revoke, changes_prune, tenant_create, secrets_migrate, secrets_purge)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.func is apikey_create:
        if args.cloud_admin and args.role not in (None, "admin"):
            parser.error("a cloud-admin key has no other role than admin")
        if not args.cloud_admin and args.role is None:
            parser.error("--role is required with --tenant")
        args.role = args.role or "admin"
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
