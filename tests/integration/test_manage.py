"""craton-manage as an operator runs it on a fresh data directory: migrate, check the revision,
load the demo fleet (twice, harmlessly), print the sample configuration, migrate back."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import func, select

from craton.db.models import Group, Host, Region, Tenant
from craton.db.session import Database
from craton.demo import GROUPS, demo_hosts
from tests import services

BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parents[2]


class Manage:
    """Runs craton-manage with a private data dir and no CRATON_* settings of the caller's."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.data_dir = home / "data"
        self.env = services.environment_without_craton()
        self.env.update(HOME=str(home), CRATON_DATA_DIR=str(self.data_dir))

    def __call__(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(BIN / "craton-manage"), *args], env=self.env, cwd=self.home,
                              capture_output=True, text=True, timeout=120)

    def counts(self) -> dict[str, int]:
        db = Database(f"sqlite:///{self.data_dir / 'craton.db'}")
        try:
            with db.transaction(write=False) as session:
                return {model.__name__: session.scalar(select(func.count()).select_from(model))
                        for model in (Tenant, Region, Group, Host)}
        finally:
            db.dispose()


@pytest.fixture
def manage(tmp_path: Path) -> Manage:
    return Manage(tmp_path)


def test_db_current_on_an_empty_database_exits_1(manage: Manage) -> None:
    result = manage("db", "current")
    assert result.returncode == 1, result.stderr
    assert "base" in result.stdout


def test_upgrade_then_current_exits_0(manage: Manage) -> None:
    upgraded = manage("db", "upgrade")
    assert upgraded.returncode == 0, upgraded.stderr
    assert (manage.data_dir / "craton.db").is_file()
    current = manage("db", "current")
    assert current.returncode == 0, current.stderr
    lines = dict(line.split(":", 1) for line in current.stdout.splitlines())
    assert lines["current"].strip() == lines["head"].strip()
    assert f"database at revision {lines['head'].strip()}" in upgraded.stdout


def test_demo_load_twice_is_idempotent(manage: Manage) -> None:
    assert manage("db", "upgrade").returncode == 0
    first = manage("demo", "load")
    assert first.returncode == 0, first.stderr
    counts = manage.counts()
    assert counts == {"Tenant": 1, "Region": 1, "Group": len(GROUPS),
                      "Host": len(demo_hosts())}

    second = manage("demo", "load")
    assert second.returncode == 0, second.stderr
    assert second.stdout == first.stdout, "the same region (id and tenant) is reported"
    assert "demo region 'demo-local' is region" in first.stdout
    assert manage.counts() == counts


def test_config_sample_matches_the_checked_in_file(manage: Manage) -> None:
    result = manage("config", "sample")
    assert result.returncode == 0, result.stderr
    checked_in = (REPO / "etc" / "craton.conf.sample").read_text()
    assert result.stdout == checked_in, (
        "etc/craton.conf.sample is stale: regenerate it with "
        "`.venv/bin/craton-manage config sample > etc/craton.conf.sample`")


def test_sample_config_is_a_valid_config(manage: Manage) -> None:
    """An operator copies the sample and uncomments what they need; the copy as is must load."""
    sample = manage.home / "craton.conf"
    sample.write_text(manage("config", "sample").stdout)
    result = manage("--config", str(sample), "db", "current")
    assert result.returncode == 1, result.stderr
    assert "head:" in result.stdout


def test_downgrade_to_base_then_current_exits_1(manage: Manage) -> None:
    assert manage("db", "upgrade").returncode == 0
    assert manage("demo", "load").returncode == 0
    downgraded = manage("db", "downgrade", "--revision", "base")
    assert downgraded.returncode == 0, downgraded.stderr
    assert "database at revision base" in downgraded.stdout
    current = manage("db", "current")
    assert current.returncode == 1
    assert "base" in current.stdout
    upgraded = manage("db", "upgrade")
    assert upgraded.returncode == 0, upgraded.stderr
    assert manage.counts() == {"Tenant": 0, "Region": 0, "Group": 0, "Host": 0}


def test_missing_config_file_exits_2_with_a_message(manage: Manage) -> None:
    missing = manage.home / "nowhere.conf"
    result = manage("--config", str(missing), "db", "current")
    assert result.returncode == 2
    assert result.stderr.strip() == \
        f"craton-manage: configuration file {missing} does not exist"
    assert not manage.data_dir.exists(), "nothing is created when the settings are refused"


def test_craton_config_from_the_environment_is_used(manage: Manage) -> None:
    """$CRATON_CONFIG points craton-manage at another database."""
    other = manage.home / "other"
    config = manage.home / "craton.conf"
    config.write_text(f"[DEFAULT]\ndata_dir = {other}\n")
    manage.env.pop("CRATON_DATA_DIR")
    manage.env["CRATON_CONFIG"] = str(config)
    assert manage("db", "upgrade").returncode == 0
    assert (other / "craton.db").is_file()
    assert not manage.data_dir.exists()
