"""Settings: defaults, the INI file, CRATON_* overrides, value parsing and the errors an operator
sees for a file that cannot be used."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from craton import config
from craton.config import ConfigError, Settings, env_name, load_settings, without_password


@pytest.fixture(autouse=True)
def no_system_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Never read the machine's /etc/craton/craton.conf: only what a test writes counts."""
    monkeypatch.setattr(config, "DEFAULT_CONFIG_PATHS", (tmp_path / "absent" / "craton.conf",))


def write(tmp_path: Path, text: str, name: str = "craton.conf") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_defaults_without_file_or_environment() -> None:
    """A fresh install with no configuration serves noauth on loopback with SQLite in data_dir."""
    settings = load_settings(environ={})
    assert settings == Settings()
    assert settings.api.host == "127.0.0.1"
    assert settings.api.port == 7780
    assert settings.api.auth_strategy == "noauth"
    assert settings.api.max_body_size == 16 * 1024 * 1024
    assert settings.limits.max_value_bytes == 64 * 1024 and settings.quotas.hosts == 100_000
    assert settings.api.default_page_size == 100 and settings.api.max_page_size == 1000
    assert settings.database.url == "" and settings.database.echo is False
    assert settings.secrets.keys == ()
    assert settings.data_dir == Path("~/.local/share/craton").expanduser()


def test_database_url_defaults_to_sqlite_under_data_dir(tmp_path: Path) -> None:
    """Moving data_dir moves the embedded database and the secrets key with it."""
    settings = load_settings(environ={"CRATON_DATA_DIR": str(tmp_path / "data")})
    assert settings.database_url == f"sqlite:///{tmp_path / 'data' / 'craton.db'}"
    assert settings.secrets_key_file == tmp_path / "data" / "secrets.key"


def test_data_dir_with_tilde_is_expanded(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    settings = load_settings(environ={"CRATON_DATA_DIR": "~/craton"})
    assert settings.data_dir == tmp_path / "craton"
    assert settings.database_url == f"sqlite:///{tmp_path / 'craton' / 'craton.db'}"


def test_explicit_database_url_wins_over_data_dir(tmp_path: Path) -> None:
    url = "mysql+pymysql://craton:s%40cr$t@db.example/craton?charset=utf8mb4"
    path = write(tmp_path, f"[DEFAULT]\ndata_dir = {tmp_path}\n[database]\nurl = {url}\n")
    settings = load_settings(path, environ={})
    assert settings.database_url == url, "'%' and '$' in a password must be read verbatim"


def test_file_values_are_read(tmp_path: Path) -> None:
    path = write(tmp_path, """
[DEFAULT]
data_dir = /srv/craton
log_level = DEBUG

[database]
pool_size = 12
echo = yes

[api]
host = ::1
port = 8123
default_page_size = 20
max_page_size = 200

[secrets]
keys = new-key, old-key
key_file = /srv/craton/key
""")
    settings = load_settings(path, environ={})
    assert settings.DEFAULT.data_dir == "/srv/craton" and settings.DEFAULT.log_level == "DEBUG"
    assert settings.database.pool_size == 12 and settings.database.echo is True
    assert settings.database.pool_recycle == 3600, "options not in the file keep their default"
    assert (settings.api.host, settings.api.port) == ("::1", 8123)
    assert (settings.api.default_page_size, settings.api.max_page_size) == (20, 200)
    assert settings.secrets.keys == ("new-key", "old-key")
    assert settings.secrets_key_file == Path("/srv/craton/key")


def test_craton_config_names_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "[api]\nport = 8001\n")
    assert load_settings(environ={"CRATON_CONFIG": str(path)}).api.port == 8001


def test_explicit_path_beats_craton_config(tmp_path: Path) -> None:
    chosen = write(tmp_path, "[api]\nport = 8002\n", "chosen.conf")
    other = write(tmp_path, "[api]\nport = 8003\n", "other.conf")
    assert load_settings(chosen, environ={"CRATON_CONFIG": str(other)}).api.port == 8002


def test_system_file_is_read_when_present(monkeypatch: pytest.MonkeyPatch,
                                          tmp_path: Path) -> None:
    """Without --config or $CRATON_CONFIG, /etc/craton/craton.conf is used when it exists."""
    system = write(tmp_path, "[api]\nport = 8004\n", "system.conf")
    monkeypatch.setattr(config, "DEFAULT_CONFIG_PATHS", (system,))
    assert load_settings(environ={}).api.port == 8004


def test_environment_beats_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, """
[DEFAULT]
data_dir = /from/file

[database]
url = sqlite:////from/file.db

[api]
port = 8000
max_body_size = 100
""")
    environ = {
        "CRATON_DATA_DIR": "/from/env",
        "CRATON_DATABASE_URL": "sqlite:////from/env.db",
        "CRATON_API_PORT": "9000",
    }
    settings = load_settings(path, environ=environ)
    assert settings.DEFAULT.data_dir == "/from/env"
    assert settings.database_url == "sqlite:////from/env.db"
    assert settings.api.port == 9000
    assert settings.api.max_body_size == 100, "options without an override keep the file value"


def test_environment_alone_sets_options() -> None:
    settings = load_settings(environ={"CRATON_API_HOST": "localhost",
                                      "CRATON_SECRETS_KEYS": "k1,k2",
                                      "CRATON_DATABASE_ECHO": "true"})
    assert settings.api.host == "localhost"
    assert settings.secrets.keys == ("k1", "k2")
    assert settings.database.echo is True


@pytest.mark.parametrize(("raw", "expected"), [
    ("1", True), ("true", True), ("TRUE", True), ("yes", True), ("On", True),
    ("0", False), ("false", False), ("no", False), ("off", False), ("", False),
])
def test_bool_values(raw: str, expected: bool) -> None:
    assert load_settings(environ={"CRATON_DATABASE_ECHO": raw}).database.echo is expected


@pytest.mark.parametrize("raw", ["maybe", "2", "enabled"])
def test_bad_bool_names_the_option(raw: str) -> None:
    with pytest.raises(ConfigError, match=r"\[database\] echo"):
        load_settings(environ={"CRATON_DATABASE_ECHO": raw})


@pytest.mark.parametrize(("raw", "expected"), [("8080", 8080), (" 8081 ", 8081)])
def test_int_values(raw: str, expected: int) -> None:
    assert load_settings(environ={"CRATON_API_PORT": raw}).api.port == expected


@pytest.mark.parametrize("raw", ["http", "80.5", "0x50", ""])
def test_bad_int_from_the_environment_names_the_option(raw: str) -> None:
    with pytest.raises(ConfigError, match=r"\[api\] port") as caught:
        load_settings(environ={"CRATON_API_PORT": raw})
    assert repr(raw) in str(caught.value), "the message shows the value that was refused"


def test_bad_int_in_the_file_names_the_option(tmp_path: Path) -> None:
    path = write(tmp_path, "[database]\npool_size = lots\n")
    with pytest.raises(ConfigError, match=r"\[database\] pool_size.*'lots'"):
        load_settings(path, environ={})


@pytest.mark.parametrize(("raw", "expected"), [
    ("a", ("a",)),
    ("a,b", ("a", "b")),
    (" a , b ,, c ,", ("a", "b", "c")),
    ("", ()),
])
def test_list_values(raw: str, expected: tuple[str, ...]) -> None:
    assert load_settings(environ={"CRATON_SECRETS_KEYS": raw}).secrets.keys == expected


def test_unknown_option_in_a_section_is_refused(tmp_path: Path) -> None:
    """A typo (prot for port) must not be silently ignored."""
    path = write(tmp_path, "[api]\nprot = 8000\n")
    with pytest.raises(ConfigError, match=r"\[api\].*prot"):
        load_settings(path, environ={})


def test_unknown_option_in_default_section_is_refused(tmp_path: Path) -> None:
    """A typo in [DEFAULT] (data_dri for data_dir) would otherwise put the database elsewhere
    without a word."""
    path = write(tmp_path, "[DEFAULT]\ndata_dri = /srv/craton\n")
    with pytest.raises(ConfigError, match="data_dri"):
        load_settings(path, environ={})


def test_unknown_section_is_refused(tmp_path: Path) -> None:
    """A misspelt section ([databse]) would otherwise leave production on the SQLite default."""
    path = write(tmp_path, "[databse]\nurl = mysql+pymysql://db.example/craton\n")
    with pytest.raises(ConfigError, match="databse"):
        load_settings(path, environ={})


@pytest.mark.parametrize("text", [
    "port = 8000\n",
    "[api]\nport = 8000\nport = 8001\n",
    "[api]\n[api]\n",
    "[api\nport = 8000\n",
])
def test_file_that_is_not_valid_ini_is_a_config_error(tmp_path: Path, text: str) -> None:
    """craton-api and craton-manage turn ConfigError into a one-line message and exit 2; any
    other exception is a traceback."""
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match=str(path)):
        load_settings(path, environ={})


def test_missing_file_from_craton_config_is_refused(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.conf"
    with pytest.raises(ConfigError, match=str(missing)):
        load_settings(environ={"CRATON_CONFIG": str(missing)})


def test_missing_explicit_file_is_refused(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.conf"
    with pytest.raises(ConfigError, match=str(missing)):
        load_settings(missing, environ={})


def test_directory_as_config_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=str(tmp_path)):
        load_settings(tmp_path, environ={})


@pytest.mark.parametrize(("environ", "option"), [
    ({"CRATON_API_DEFAULT_PAGE_SIZE": "0"}, "default_page_size"),
    ({"CRATON_API_MAX_PAGE_SIZE": "-1"}, "max_page_size"),
    ({"CRATON_API_DEFAULT_PAGE_SIZE": "500", "CRATON_API_MAX_PAGE_SIZE": "100"},
     "default_page_size"),
    ({"CRATON_SECRETS_BACKEND": "vault"}, "backend"),
    ({"CRATON_LIMITS_MAX_VALUE_BYTES": "0"}, r"\[limits\] max_value_bytes"),
    ({"CRATON_LIMITS_MAX_JSON_DEPTH": "-3"}, r"\[limits\] max_json_depth"),
    ({"CRATON_QUOTAS_HOSTS": "-1"}, r"\[quotas\] hosts"),
    ({"CRATON_QUOTAS_SECRETS": str(2**31)}, r"\[quotas\] secrets"),
])
def test_inconsistent_values_are_refused(environ: dict[str, str], option: str) -> None:
    with pytest.raises(ConfigError, match=option):
        load_settings(environ=environ)


@pytest.mark.parametrize(("environ", "option"), [
    ({"CRATON_API_AUTH_STRATEGY": "keystone"}, r"\[api\] auth_strategy"),
    ({"CRATON_LOG_LEVEL": "LOUD"}, "log_level"),
    ({"CRATON_API_PORT": "70000"}, r"\[api\] port"),
    ({"CRATON_API_PORT": "0"}, r"\[api\] port"),
])
def test_values_that_cannot_be_used_are_refused_at_load(environ: dict[str, str],
                                                         option: str) -> None:
    """An option outside its documented values is a ConfigError naming it when settings load,
    not a traceback once gunicorn or logging gets to use it."""
    with pytest.raises(ConfigError, match=option):
        load_settings(environ=environ)


def test_limits_and_quotas_are_read_like_every_option(tmp_path: Path) -> None:
    """A quota of 0 is allowed (the tenant may add none); the environment overrides the file."""
    path = write(tmp_path, "[limits]\nmax_bulk_hosts = 500\n[quotas]\nconcurrent_jobs = 0\n"
                           "hosts = 10\n")
    settings = load_settings(path, environ={"CRATON_QUOTAS_HOSTS": "20"})
    assert settings.limits.max_bulk_hosts == 500
    assert (settings.quotas.concurrent_jobs, settings.quotas.hosts) == (0, 20)


def test_every_option_has_its_own_environment_variable() -> None:
    """Two options must never share an override variable (e.g. [DEFAULT] x_y vs [x] y)."""
    names = [
        env_name(section, option.name)
        for section, cls in config._sections()
        for option in dataclasses.fields(cls)
    ]
    assert len(names) == len(set(names)), names
    # [keystone_authtoken]'s options (keystonemiddleware's) are CRATON_KEYSTONE_AUTHTOKEN_*.
    prefix = env_name(config.KEYSTONE_AUTHTOKEN, "")
    assert not [name for name in names if name.startswith(prefix)]
    assert "CRATON_DATA_DIR" in names and "CRATON_DATABASE_URL" in names
    assert "CRATON_API_MAX_BODY_SIZE" in names


@pytest.mark.parametrize(("environ", "option"), [
    ({"CRATON_REDIS_URL": "redis://127.0.0.1:6379/0"}, r"\[redis\] url has no password"),
    ({"CRATON_REDIS_URL": "rediss://user@redis.example.com/0"}, r"\[redis\] url"),
    ({"CRATON_DATABASE_URL": "mysql+pymysql://craton@127.0.0.1/craton"},
     r"\[database\] url has no password"),
    ({"CRATON_JOBS_SANDBOX_PATHS": "relative/dir"}, r"\[jobs\] sandbox_paths"),
])
def test_services_a_sandboxed_job_could_use_are_refused(environ: dict[str, str],
                                                        option: str) -> None:
    """Sandboxed jobs share the machine's network: Craton will not start on a Redis or a
    networked database that answers without a password."""
    with pytest.raises(ConfigError, match=option):
        load_settings(environ=environ)


@pytest.mark.parametrize("environ", [
    {"CRATON_REDIS_URL": "redis://:s3cret@127.0.0.1:6379/0"},
    {"CRATON_REDIS_URL": "unix:///run/redis/redis.sock"},
    {"CRATON_DATABASE_URL": "mysql+pymysql://craton:s3cret@127.0.0.1/craton"},
    {"CRATON_DATABASE_URL": "mysql+pymysql://craton@localhost/craton?unix_socket=/run/m.sock"},
    {"CRATON_REDIS_URL": "redis://127.0.0.1:6379/0", "CRATON_JOBS_SANDBOX": "off"},
    {"CRATON_JOBS_SANDBOX_PATHS": "/opt/collections,/srv/dropbox:rw"},
])
def test_protected_services_and_absolute_paths_are_accepted(environ: dict[str, str]) -> None:
    assert load_settings(environ=environ)


def test_urls_in_logs_hide_their_password() -> None:
    """A URL shown in a log line or an error keeps everything but its password."""
    assert without_password("redis://:s3cret@127.0.0.1:6379/0") == "redis://:***@127.0.0.1:6379/0"
    assert without_password("mysql+pymysql://craton:s3cret@db/craton?charset=utf8mb4") == \
        "mysql+pymysql://craton:***@db/craton?charset=utf8mb4"
    assert without_password("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"


def test_keystone_authtoken_is_handed_on_as_written(tmp_path: Path) -> None:
    path = tmp_path / "craton.conf"
    path.write_text("[DEFAULT]\nlog_level = INFO\n[api]\nauth_strategy = keystone\n"
                    "[keystone]\nauto_create_tenants = true\nrole_map = Member:member\n"
                    "[keystone_authtoken]\nauth_url = http://127.0.0.1:5000/v3\n"
                    "auth_type = password\n")
    settings = load_settings(path, {"CRATON_KEYSTONE_AUTHTOKEN_PASSWORD": "s3cret"})
    assert dict(settings.keystone_authtoken) == {
        "auth_url": "http://127.0.0.1:5000/v3", "auth_type": "password", "password": "s3cret"}
    assert settings.keystone.auto_create_tenants is True
    assert settings.keystone.roles == {"Member": "member"}


@pytest.mark.parametrize(("environ", "problem"), [
    ({"CRATON_API_AUTH_STRATEGY": "keystone"}, r"needs \[keystone_authtoken\]"),
    ({"CRATON_KEYSTONE_ROLE_MAP": "admin:root"}, r"\[keystone\] role_map: 'admin:root'"),
    ({"CRATON_KEYSTONE_ROLE_MAP": "reader"}, r"\[keystone\] role_map: 'reader'"),
])
def test_keystone_settings_that_cannot_work_are_refused(environ: dict[str, str],
                                                        problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        load_settings(None, environ)


@pytest.mark.parametrize(("options", "problem"), [
    ({"auth_type": "password", "usernme": "craton"}, "unknown option usernme"),
    ({"auth_type": "pasword"}, "auth_type: no keystoneauth1 plugin 'pasword'"),
    ({"token_cache_time": "soon"}, "token_cache_time"),
])
def test_keystonemiddleware_options_are_checked_at_start(options: dict[str, str],
                                                         problem: str) -> None:
    from craton.identity.keystone import middleware_config

    environ = {f"CRATON_KEYSTONE_AUTHTOKEN_{name.upper()}": value
               for name, value in options.items()}
    settings = load_settings(None, {"CRATON_API_AUTH_STRATEGY": "keystone", **environ})
    with pytest.raises(ConfigError, match=problem):
        middleware_config(settings)
