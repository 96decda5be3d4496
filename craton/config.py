"""Settings: an INI file (``etc/craton.conf``) overridden by ``CRATON_*`` environment variables.

Every option is declared once, as a typed dataclass field with its help text; the loader, the
environment mapping and the sample file (``craton-manage config sample``) all derive from those
declarations, so the documentation cannot drift from the code.

An option ``name`` in section ``[section]`` is overridden by ``CRATON_SECTION_NAME``; options of
``[DEFAULT]`` by ``CRATON_NAME`` (for example ``CRATON_DATA_DIR``, ``CRATON_DATABASE_URL``).
"""

from __future__ import annotations

import configparser
import dataclasses
import ipaddress
import os
import textwrap
import urllib.parse
from collections.abc import Mapping
from pathlib import Path
from typing import Any

CONFIG_ENV = "CRATON_CONFIG"
KEYSTONE_AUTHTOKEN = "keystone_authtoken"
"""The section handed as it is to keystonemiddleware's auth_token (which checks and documents
its options): ``CRATON_KEYSTONE_AUTHTOKEN_<OPTION>`` overrides one of them."""
AUTH_STRATEGIES = ("noauth", "apikey", "keystone")
"""Strategies craton.api.auth implements (checked here so a typo fails at start-up)."""
SECRET_BACKENDS = ("local", "fernet", "barbican")
"""Where secret content may be kept (fernet: the old name of local)."""
DEFAULT_CONFIG_PATHS = (Path("/etc/craton/craton.conf"),)
TENANT_PLACEHOLDER = "{tenant}"
"""In a ``[sources] file_roots`` directory: the id of the tenant the source is read for."""


class ConfigError(ValueError):
    """An option has a value that cannot be used; the message names the option."""


def _opt(default: Any, help: str) -> Any:
    return dataclasses.field(default=default, metadata={"help": help})


@dataclasses.dataclass(frozen=True)
class DefaultSettings:
    data_dir: str = _opt(
        "~/.local/share/craton",
        "Directory holding the embedded SQLite database, the secrets key file, the cache of "
        "fetched sources and job work directories. Created on first use, readable by "
        "Craton's user only (0700).",
    )
    log_level: str = _opt("INFO", "Logging level: DEBUG, INFO, WARNING or ERROR.")


@dataclasses.dataclass(frozen=True)
class DatabaseSettings:
    url: str = _opt(
        "",
        "SQLAlchemy URL of the inventory database. Empty means SQLite in data_dir "
        "(sqlite:///<data_dir>/craton.db). Production: mysql+pymysql://user:pass@host/craton"
        "?charset=utf8mb4",
    )
    pool_size: int = _opt(5, "Connections kept open per process (ignored for SQLite).")
    pool_recycle: int = _opt(
        3600, "Seconds after which a pooled connection is replaced (MariaDB wait_timeout)."
    )
    echo: bool = _opt(False, "Log every SQL statement (debugging only).")


@dataclasses.dataclass(frozen=True)
class ApiSettings:
    host: str = _opt("127.0.0.1", "Address craton-api listens on.")
    port: int = _opt(7780, "Port craton-api listens on.")
    workers: int = _opt(
        1,
        "Gunicorn worker processes. Keep 1 with SQLite; the embedded job engine also "
        "needs a single process.",
    )
    threads: int = _opt(16, "Threads per worker for requests, besides event streams.")
    max_streams: int = _opt(
        1000, "Event streams (live job events) one worker serves at once; each holds a thread "
              "of its own, besides [api] threads. Beyond it: 429.")
    max_streams_per_caller: int = _opt(
        20, "Event streams one caller (user) may hold open at once. Beyond it: 429.")
    auth_strategy: str = _opt(
        "noauth",
        "How requests are authenticated. apikey (for any real deployment): every /v1 request "
        "sends an API key (Authorization: Bearer <key> or X-Auth-Token: <key>) made with "
        "craton-manage apikey create or by a tenant admin through the API. keystone: every /v1 "
        "request sends a Keystone token (X-Auth-Token), checked by keystonemiddleware's "
        "auth_token as [keystone_authtoken] configures it; see [keystone]. noauth (development "
        "only): no credentials at all; every request acts as cloud admin unless it sends "
        "X-Craton-Tenant: <tenant id>; only allowed on a loopback address, and only for "
        "requests whose Host is a loopback name.",
    )
    apikey_hash_key_file: str = _opt(
        "",
        "File holding the server-side key API keys are hashed with (HMAC-SHA256); created on "
        "first use, mode 0600. Every craton-api and craton-manage of one installation must "
        "read the same key. Empty means <data_dir>/apikey-hash.key.",
    )
    max_body_size: int = _opt(
        16 * 1024 * 1024,
        "Largest request body accepted, in bytes; larger bodies answer 413. The default admits "
        "10,000 hosts with ten variables each (about 3 MB) several times over.",
    )
    default_page_size: int = _opt(100, "Items per page of a list when the caller sends no limit.")
    max_page_size: int = _opt(1000, "Largest limit a caller may ask of a list.")


@dataclasses.dataclass(frozen=True)
class KeystoneSettings:
    """How a Keystone token ([api] auth_strategy = keystone) becomes a Craton caller: its
    project is a tenant, its roles Craton roles."""

    auto_create_tenants: bool = _opt(
        False,
        "Create a tenant (named after the project) the first time a token of a Keystone "
        "project without one is used. Off: a cloud admin creates each project's tenant "
        "(POST /v1/tenants with keystone_project_id, or craton-manage tenant create "
        "--keystone-project), and a token of another project answers 403.")
    role_map: tuple[str, ...] = _opt(
        ("reader:reader", "member:member", "admin:admin"),
        "Comma-separated keystone_role:craton_role pairs; a token's roles on its project map "
        "to Craton roles (reader, member, admin) by these, and roles not listed give nothing. "
        "Keystone puts implied roles in tokens (admin implies member implies reader).")
    cloud_admin_role: str = _opt(
        "admin",
        "The Keystone role that makes a token a cloud admin (every tenant, tenants:manage): "
        "on a system-scoped token, or on a token of admin_project_id.")
    admin_project_id: str = _opt(
        "",
        "Id of the Keystone project whose cloud_admin_role holders are cloud admins. Empty: "
        "only system-scoped tokens make cloud admins (and the admin role on any project is "
        "that project's tenant admin).")

    @property
    def roles(self) -> dict[str, str]:
        """Keystone role → Craton role."""
        return dict(pair.split(":", 1) for pair in self.role_map)


@dataclasses.dataclass(frozen=True)
class PolicySettings:
    """Who may do what: oslo.policy rules with documented defaults (etc/policy.yaml.sample,
    written by oslopolicy-sample-generator --namespace craton)."""

    file: str = _opt(
        "",
        "A policy.yaml overriding some of the default rules (rule name: check string, as in "
        "etc/policy.yaml.sample). Read at start-up (an unknown rule name or a broken file "
        "stops the server) and again whenever it changes. Empty: the defaults.",
    )


@dataclasses.dataclass(frozen=True)
class LimitSettings:
    """What one request, or one object, may hold: past these an answer is 413 (the request as
    a whole) or 422 (a field), naming the field and the option."""

    max_value_bytes: int = _opt(
        64 * 1024,
        "Largest variable value, in bytes of its JSON encoding (region, group and host "
        "variables, a job's extra_vars, each variable of a reference file). Every bundle and "
        "job carries the values, so one huge value costs on every use.",
    )
    max_variables: int = _opt(
        1000, "Most variables one region, group or host (or a job's extra_vars, or a reference "
              "file) may hold.")
    max_json_depth: int = _opt(
        32,
        "Deepest nesting of arrays and objects in a variable value (a scalar is 0, [1] is 1), "
        "in a request body or a reference file. A body may nest 3 levels deeper than that, "
        "for the objects that hold its values.",
    )
    max_bulk_hosts: int = _opt(
        10000, "Most hosts one POST /v1/regions/{id}/hosts may create.")


@dataclasses.dataclass(frozen=True)
class QuotaSettings:
    """How much each tenant may keep (or run at once) unless a cloud admin set its own quota
    on the tenant (PATCH /v1/tenants/{id} {"quotas": {...}})."""

    hosts: int = _opt(100000, "Hosts a tenant may have, across its regions, unless a cloud "
                                 "admin set the tenant's own quota.")
    groups: int = _opt(10000, "Groups a tenant may have, across its regions, unless a cloud "
                                 "admin set the tenant's own quota.")
    secrets: int = _opt(200000, "Secrets a tenant may have, across its hosts, unless a cloud "
                                  "admin set the tenant's own quota.")
    concurrent_jobs: int = _opt(
        20, "Jobs of a tenant that may be pending or running at once (unless a cloud admin "
            "set the tenant's own quota); more answer 429 with Retry-After.")


@dataclasses.dataclass(frozen=True)
class SecretsSettings:
    backend: str = _opt(
        "local",
        "Where new secret content is kept: local (encrypted with Fernet in the database; "
        "fernet is the same) or barbican (in Barbican, as [barbican] configures; the database "
        "keeps the Barbican secret's id). Content already kept either way stays readable; "
        "craton-manage secrets migrate --to barbican moves it.")
    keys: tuple[str, ...] = _opt(
        (),
        "Comma-separated Fernet keys. The first encrypts; all decrypt, so a key can be rotated "
        "by putting the new one first. Empty means the key in key_file.",
    )
    key_file: str = _opt(
        "",
        "File holding a Fernet key, created (mode 0600) on first use when missing. Empty means "
        "<data_dir>/secrets.key.",
    )


@dataclasses.dataclass(frozen=True)
class BarbicanSettings:
    """Craton's own service user in Keystone, which keeps secret content in Barbican for
    every caller ([secrets] backend = barbican)."""

    auth_url: str = _opt("", "Keystone's identity URL (https://keystone.example.com/v3).")
    username: str = _opt("", "Craton's service user.")
    password: str = _opt("", "Its password.")
    project_name: str = _opt(
        "service", "The project that owns the payloads (give the user Barbican's member "
                   "role, or creator, on it).")
    user_domain_name: str = _opt("Default", "The user's domain.")
    project_domain_name: str = _opt("Default", "The project's domain.")
    endpoint: str = _opt(
        "", "Barbican's URL (http://barbican.example.com:9311). Empty: from Keystone's "
            "catalog (service type key-manager).")
    interface: str = _opt("public", "Which catalog endpoint to use: public, internal, admin.")
    region_name: str = _opt("", "The catalog region of Barbican's endpoint; empty: any.")
    timeout: int = _opt(10, "Seconds one request to Keystone or Barbican may take.")
    concurrency: int = _opt(
        8, "Requests to Barbican one bundle, job or cleanup makes at once (the payloads of a "
           "bundle's secrets are read this many at a time).")


@dataclasses.dataclass(frozen=True)
class SourcesSettings:
    file_roots: tuple[str, ...] = _opt(
        (),
        "Comma-separated directories that file:// references and playbook sources may read "
        "from (git repositories included). {tenant} in a directory stands for the id of the "
        "tenant whose region the reference or job belongs to, so each tenant reads only its "
        "own directory; a directory without {tenant} is shared by every tenant. Empty means "
        "<data_dir>/sources/{tenant}.",
    )
    allowed_networks: tuple[str, ...] = _opt(
        (),
        "Comma-separated networks (CIDR, e.g. 10.20.0.0/16) that http(s) references and git "
        "sources may reach although they are loopback, private, link-local or this server's "
        "own addresses. Empty: only public addresses that are not this server's.",
    )
    http_timeout: int = _opt(10, "Seconds an http(s) fetch may take.")
    git_timeout: int = _opt(120, "Seconds a git fetch may take.")
    max_bytes: int = _opt(1024 * 1024, "Largest referenced file accepted, in bytes.")
    cache_dir: str = _opt(
        "", "Where fetched repositories and files are cached. Empty means <data_dir>/cache.")
    refresh_seconds: int = _opt(
        0,
        "Seconds a reference's fetch (the commit a git ref named, an http(s) or file "
        "reference's content) is reused before it is fetched again. 0: fetched for every "
        "bundle, so a bundle follows a pushed commit at once; more makes a bundle's ETag "
        "(and so an If-None-Match answered 304) cost no fetch within that time, and a "
        "bundle follows a moved branch or changed file only when it has passed.",
    )


@dataclasses.dataclass(frozen=True)
class JobsSettings:
    engine: str = _opt(
        "embedded",
        "embedded: the API process runs jobs itself (no Redis needed). distributed: jobs are "
        "posted to a Redis jobboard and craton-worker processes run them.",
    )
    concurrent_jobs: int = _opt(4, "Jobs one process (API or worker) runs at the same time.")
    default_forks: int = _opt(5, "Hosts a job runs at once when it does not say.")
    max_forks: int = _opt(100, "Most hosts a job may run at once.")
    work_dir: str = _opt("", "Where jobs unpack bundles and sources. Empty: <data_dir>/jobs.")
    host_key_checking: bool = _opt(
        True, "Let Ansible check SSH host keys (turn off only for throw-away hosts).")
    claim_expiry: int = _opt(
        15, "Seconds a worker's claim on a job lasts without a heartbeat before another "
            "worker may take the job over (distributed engine).")
    keep_work_dirs: bool = _opt(False, "Keep a job's unpacked bundle after it ends.")
    sandbox: bool = _opt(
        True,
        "Run each job's Ansible in a bubblewrap sandbox that sees only the job's own files "
        "(playbooks and inventory variables are code to Ansible, and tenants write them). "
        "off runs them unconfined with Craton's rights: only where every playbook and "
        "variable is trusted; Craton warns loudly at start-up.")
    sandbox_paths: tuple[str, ...] = _opt(
        (),
        "Comma-separated extra paths every sandboxed run may read, e.g. a directory of Ansible "
        "collections or roles; a path ending in :rw may also be written (every job of every "
        "tenant shares it, so share nothing secret there).")
    known_hosts: str = _opt(
        "~/.ssh/known_hosts",
        "SSH known-hosts file jobs check host keys against (read-only in the sandbox). Empty: "
        "none, so with host_key_checking every host is unknown.")


@dataclasses.dataclass(frozen=True)
class RedisSettings:
    url: str = _opt(
        "",
        "Redis URL (redis://127.0.0.1:6379/0). Events are also published to per-job streams "
        "there; the distributed engine's jobboard lives there. Empty: no Redis.",
    )
    stream_max_len: int = _opt(100000, "Events kept in each job's Redis stream.")
    prefix: str = _opt(
        "craton", "Prefix of Craton's Redis keys; give each installation sharing one Redis "
                  "its own.")


@dataclasses.dataclass(frozen=True)
class ChangesSettings:
    retention_days: int = _opt(
        365,
        "Days change records are kept: craton-manage changes prune deletes older ones (run it "
        "from cron). 0: keep them all.")


@dataclasses.dataclass(frozen=True)
class Settings:
    DEFAULT: DefaultSettings = dataclasses.field(default_factory=DefaultSettings)
    database: DatabaseSettings = dataclasses.field(default_factory=DatabaseSettings)
    api: ApiSettings = dataclasses.field(default_factory=ApiSettings)
    keystone: KeystoneSettings = dataclasses.field(default_factory=KeystoneSettings)
    keystone_authtoken: tuple[tuple[str, str], ...] = dataclasses.field(
        default=(), metadata={"pass_through": True})
    """[keystone_authtoken], as written: keystonemiddleware's own options."""
    policy: PolicySettings = dataclasses.field(default_factory=PolicySettings)
    limits: LimitSettings = dataclasses.field(default_factory=LimitSettings)
    quotas: QuotaSettings = dataclasses.field(default_factory=QuotaSettings)
    secrets: SecretsSettings = dataclasses.field(default_factory=SecretsSettings)
    barbican: BarbicanSettings = dataclasses.field(default_factory=BarbicanSettings)
    sources: SourcesSettings = dataclasses.field(default_factory=SourcesSettings)
    jobs: JobsSettings = dataclasses.field(default_factory=JobsSettings)
    redis: RedisSettings = dataclasses.field(default_factory=RedisSettings)
    changes: ChangesSettings = dataclasses.field(default_factory=ChangesSettings)

    @property
    def data_dir(self) -> Path:
        return Path(self.DEFAULT.data_dir).expanduser()

    @property
    def database_url(self) -> str:
        return self.database.url or f"sqlite:///{self.data_dir / 'craton.db'}"

    @property
    def file_roots(self) -> tuple[str, ...]:
        """The directories file:// sources may read, ``{tenant}`` still in them."""
        return self.sources.file_roots or (str(self.data_dir / "sources" / TENANT_PLACEHOLDER),)

    @property
    def cache_dir(self) -> Path:
        return Path(self.sources.cache_dir).expanduser() if self.sources.cache_dir else (
            self.data_dir / "cache"
        )

    @property
    def jobs_dir(self) -> Path:
        return Path(self.jobs.work_dir).expanduser() if self.jobs.work_dir else (
            self.data_dir / "jobs"
        )

    @property
    def apikey_hash_key_file(self) -> Path:
        return Path(self.api.apikey_hash_key_file).expanduser() \
            if self.api.apikey_hash_key_file else self.data_dir / "apikey-hash.key"

    @property
    def secrets_key_file(self) -> Path:
        return Path(self.secrets.key_file).expanduser() if self.secrets.key_file else (
            self.data_dir / "secrets.key"
        )


def _sections() -> list[tuple[str, type]]:
    """(section name, its dataclass) in declaration order; not [keystone_authtoken], whose
    options are keystonemiddleware's."""
    return [(f.name, f.default_factory) for f in dataclasses.fields(Settings)  # type: ignore[misc]
            if not f.metadata.get("pass_through")]


def env_name(section: str, option: str) -> str:
    """The environment variable that overrides ``option`` of ``section``."""
    if section == "DEFAULT":
        return f"CRATON_{option.upper()}"
    return f"CRATON_{section.upper()}_{option.upper()}"


def _convert(section: str, field: dataclasses.Field, raw: str) -> Any:
    where = f"[{section}] {field.name}"
    kind = field.type
    if kind == "bool":
        lowered = raw.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off", ""):
            return False
        raise ConfigError(f"{where}: expected true or false, got {raw!r}")
    if kind == "int":
        try:
            return int(raw)
        except ValueError:
            raise ConfigError(f"{where}: expected an integer, got {raw!r}") from None
    if kind.startswith("tuple"):
        return tuple(part.strip() for part in raw.split(",") if part.strip())
    return raw


def load_settings(
    path: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Read settings from ``path`` (or $CRATON_CONFIG, or /etc/craton/craton.conf when present),
    then apply ``CRATON_*`` overrides from ``environ``."""
    environ = os.environ if environ is None else environ
    parser = _read_file(path or environ.get(CONFIG_ENV))
    values: dict[str, Any] = {}
    for section, cls in _sections():
        kwargs = {}
        for field in dataclasses.fields(cls):
            raw = environ.get(env_name(section, field.name))
            if raw is None:
                raw = (parser.defaults() if section == "DEFAULT"
                       else parser[section] if parser.has_section(section) else {}
                       ).get(field.name)
            if raw is not None:
                kwargs[field.name] = _convert(section, field, raw)
        values[section] = cls(**kwargs)
    # The section's own options (configparser shows [DEFAULT]'s in every section).
    authtoken = {name: value for name, value in parser[KEYSTONE_AUTHTOKEN].items()
                 if name not in parser.defaults()} if parser.has_section(KEYSTONE_AUTHTOKEN) else {}
    prefix = env_name(KEYSTONE_AUTHTOKEN, "")
    authtoken.update({name.removeprefix(prefix).lower(): value for name, value in environ.items()
                      if name.startswith(prefix)})
    settings = Settings(**values, keystone_authtoken=tuple(sorted(authtoken.items())))
    _validate(settings)
    return settings


def _read_file(explicit: str | os.PathLike[str] | None) -> configparser.ConfigParser:
    """Parse the configuration file, refusing what it would be dangerous to ignore: a file that
    is not INI, an unknown section or option (a typo would leave the default in force)."""
    parser = configparser.ConfigParser(interpolation=None)
    if explicit and not Path(explicit).is_file():
        raise ConfigError(f"configuration file {explicit} does not exist")
    found = [Path(explicit)] if explicit else [p for p in DEFAULT_CONFIG_PATHS if p.is_file()][:1]
    try:
        parser.read(found)
    except configparser.Error as error:
        raise ConfigError(f"{found[0]}: {error}") from None
    sections = dict(_sections())
    for section in parser.sections():
        if section not in sections and section != KEYSTONE_AUTHTOKEN:
            raise ConfigError(f"unknown section [{section}]; known: "
                              + ", ".join(f"[{name}]" for name in [*sections, KEYSTONE_AUTHTOKEN]))
    checks = [("DEFAULT", set(parser.defaults()))] + [
        (section, set(parser[section]) - set(parser.defaults())) for section in parser.sections()
        if section != KEYSTONE_AUTHTOKEN]
    for section, options in checks:
        unknown = options - {f.name for f in dataclasses.fields(sections[section])}
        if unknown:
            raise ConfigError(f"[{section}]: unknown option(s) {', '.join(sorted(unknown))}")
    return parser


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
MAX_LIMIT = 2**31 - 1
"""Limits and quotas fit an INTEGER column (32 bits on MariaDB), where tenants' quotas live."""


def _validate(settings: Settings) -> None:
    api = settings.api
    problems = []
    if api.default_page_size < 1 or api.max_page_size < 1:
        problems.append("[api] default_page_size and max_page_size must be at least 1")
    if api.default_page_size > api.max_page_size:
        problems.append("[api] default_page_size cannot exceed max_page_size")
    if not 1 <= api.port <= 65535:
        problems.append(f"[api] port: {api.port} is not a port number (1-65535)")
    if api.workers < 1 or api.threads < 1:
        problems.append("[api] workers and threads must be at least 1")
    if not 1 <= api.max_streams_per_caller <= api.max_streams:
        problems.append("[api] max_streams_per_caller must be between 1 and max_streams")
    if api.max_body_size < 1:
        problems.append("[api] max_body_size must be positive")
    for section, least in (("limits", 1), ("quotas", 0)):
        for name, value in dataclasses.asdict(getattr(settings, section)).items():
            if not least <= value <= MAX_LIMIT:
                problems.append(f"[{section}] {name}: must be between {least} and {MAX_LIMIT}")
    if api.auth_strategy not in AUTH_STRATEGIES:
        problems.append(f"[api] auth_strategy: unknown strategy {api.auth_strategy!r}; known: "
                        + ", ".join(AUTH_STRATEGIES))
    if settings.DEFAULT.log_level.upper() not in LOG_LEVELS:
        problems.append(f"[DEFAULT] log_level: {settings.DEFAULT.log_level!r} is not one of "
                        + ", ".join(LOG_LEVELS))
    if settings.api.auth_strategy == "keystone" and not dict(settings.keystone_authtoken):
        problems.append("[api] auth_strategy = keystone needs [keystone_authtoken] (at least "
                        "www_authenticate_uri, auth_url, auth_type and the service user's "
                        "credentials)")
    for pair in settings.keystone.role_map:
        keystone_role, _, craton_role = pair.partition(":")
        if not keystone_role or craton_role not in ("reader", "member", "admin"):
            problems.append(f"[keystone] role_map: {pair!r} is not keystone_role:craton_role "
                            "with a Craton role of reader, member or admin")
    if settings.secrets.backend not in SECRET_BACKENDS:
        problems.append(f"[secrets] backend: unknown backend {settings.secrets.backend!r}; "
                        "known: " + ", ".join(SECRET_BACKENDS))
    if settings.secrets.backend == "barbican" and not (
            settings.barbican.auth_url and settings.barbican.username
            and settings.barbican.password):
        problems.append("[secrets] backend = barbican needs [barbican] auth_url, username and "
                        "password (Craton's service user)")
    if settings.barbican.timeout < 1 or settings.barbican.concurrency < 1:
        problems.append("[barbican] timeout and concurrency must be at least 1")
    if settings.sources.max_bytes < 1 or settings.sources.http_timeout < 1 \
            or settings.sources.git_timeout < 1:
        problems.append("[sources] max_bytes, http_timeout and git_timeout must be positive")
    problems += _sources_problems(settings.sources)
    if not 0 <= settings.changes.retention_days <= MAX_LIMIT:
        problems.append(f"[changes] retention_days: must be between 0 and {MAX_LIMIT}")
    jobs = settings.jobs
    if jobs.engine not in ("embedded", "distributed"):
        problems.append(f"[jobs] engine: {jobs.engine!r} is not embedded or distributed")
    if jobs.engine == "distributed" and not settings.redis.url:
        problems.append("[jobs] engine = distributed needs [redis] url")
    if not 1 <= jobs.default_forks <= jobs.max_forks:
        problems.append("[jobs] default_forks must be between 1 and max_forks")
    if jobs.concurrent_jobs < 1 or jobs.claim_expiry < 2:
        problems.append("[jobs] concurrent_jobs must be at least 1 and claim_expiry at least 2")
    for entry in jobs.sandbox_paths:
        if not Path(entry.removesuffix(":rw")).expanduser().is_absolute():
            problems.append(f"[jobs] sandbox_paths: {entry!r} is not an absolute path")
    if jobs.sandbox:
        problems += exposed_services(settings.redis.url, settings.database.url)
    if problems:
        raise ConfigError("; ".join(problems))


def without_password(url: str) -> str:
    """``url`` fit for a log line or an error message: its password replaced by ``***``."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rpartition("@")
    user = netloc[0].partition(":")[0]
    return urllib.parse.urlunsplit(parts._replace(netloc=f"{user}:***@{netloc[2]}"))


def exposed_services(redis_url: str, database_url: str) -> list[str]:
    """Craton's services a sandboxed job could use without credentials — the sandbox shares
    the host's network, so Redis or a networked database reached without a password would
    let a playbook read and write the jobboard, every job's events, or the database."""
    problems = []
    if redis_url:
        parts = urllib.parse.urlsplit(redis_url)
        if parts.scheme in ("redis", "rediss") and not parts.password:
            problems.append(
                "[redis] url has no password, but jobs run sandboxed on this machine's network "
                "and could then read and write the jobboard and every job's events: require a "
                "password in Redis (requirepass or an ACL user) and put it in the URL "
                "(redis://:PASSWORD@host:port/0), or use a unix socket (unix:///path)")
    if database_url:
        parts = urllib.parse.urlsplit(database_url)
        query = urllib.parse.parse_qs(parts.query)
        if parts.scheme.startswith(("mysql", "mariadb", "postgresql")) \
                and not parts.password and "unix_socket" not in query:
            problems.append(
                "[database] url has no password, but jobs run sandboxed on this machine's "
                "network and could then connect to the database: give the database user a "
                "password and put it in the URL")
    return problems


def _sources_problems(sources: SourcesSettings) -> list[str]:
    """A root must not depend on the working directory, and ``{tenant}`` is its only
    placeholder; a network must parse (a typo must not leave a network open or closed)."""
    problems = []
    for root in sources.file_roots:
        rest = root.replace(TENANT_PLACEHOLDER, "")
        if "{" in rest or "}" in rest:
            problems.append(f"[sources] file_roots: {root!r} has a placeholder other than "
                            f"{TENANT_PLACEHOLDER}")
        elif not Path(root).expanduser().is_absolute():
            problems.append(f"[sources] file_roots: {root!r} is not an absolute path")
    for network in sources.allowed_networks:
        try:
            ipaddress.ip_network(network, strict=False)
        except ValueError:
            problems.append(f"[sources] allowed_networks: {network!r} is not a network "
                            "(CIDR such as 10.0.0.0/8)")
    return problems


def sample_config() -> str:
    """The documented sample file, every option at its default, commented out."""
    lines = [
        "# Craton configuration. Every option is shown at its default, commented out.",
        "# Each can also be set from the environment: CRATON_<OPTION> for [DEFAULT],",
        "# CRATON_<SECTION>_<OPTION> otherwise (e.g. CRATON_DATABASE_URL).",
    ]
    for section, cls in _sections():
        lines += ["", f"[{section}]"]
        for field in dataclasses.fields(cls):
            default = field.default
            if isinstance(default, bool):
                shown = str(default).lower()
            elif isinstance(default, tuple):
                shown = ",".join(default)
            else:
                shown = str(default)
            lines.append("")
            lines += [f"# {chunk}" for chunk in textwrap.wrap(field.metadata["help"], 78)]
            lines.append(f"# ({env_name(section, field.name)})")
            lines.append(f"#{field.name} = {shown}")
    return "\n".join(lines) + "\n"
