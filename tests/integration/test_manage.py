"""craton-manage as an operator runs it on a fresh data directory: migrate, check the revision,
load the demo fleet (twice, harmlessly), print the sample configuration, prune old jobs, migrate
back."""

from __future__ import annotations

import datetime as dt
import getpass
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from sqlalchemy import func, select, update

from craton.db.models import (
    Change,
    Group,
    Host,
    HostRunStatus,
    Job,
    JobEvent,
    JobHost,
    JobStatus,
    Region,
    Tenant,
)
from craton.db.session import Database
from craton.demo import GROUPS, demo_hosts
from craton.values import utcnow
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

    def database(self) -> Database:
        return Database(f"sqlite:///{self.data_dir / 'craton.db'}")

    def counts(self) -> dict[str, int]:
        db = self.database()
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


# --- jobs prune ------------------------------------------------------------------------------

DAY = dt.timedelta(days=1)


def add_job(manage: Manage, status: JobStatus, finished_ago: dt.timedelta | None) -> int:
    """A job of the demo region as the engine leaves it: two hosts, three events; started 60
    days ago, finished ``finished_ago`` (None: not finished)."""
    db = manage.database()
    now = utcnow()
    try:
        with db.transaction() as session:
            region_id = session.scalar(select(Region.id).where(Region.name == "demo-local"))
            job = Job(region_id=region_id, status=status, playbook="site.yml", layout="hosts",
                      filters_json="{}", plan_json="{}", forks=5, extra_vars_json="{}",
                      engine="embedded", created_by="noauth", cancel_requested=False,
                      created_at=now - 60 * DAY, started_at=now - 60 * DAY,
                      finished_at=now - finished_ago if finished_ago is not None else None)
            session.add(job)
            session.flush()
            result = HostRunStatus.OK if status.finished else HostRunStatus.RUNNING
            session.add_all([JobHost(job_id=job.id, host_name=name, status=result)
                             for name in ("ctl-01", "ctl-02")])
            session.add_all([JobEvent(job_id=job.id, seq=seq, uuid=uuid.uuid4().hex,
                                      created_at=now - 60 * DAY, kind="job", host=None,
                                      data_json="{}") for seq in (1, 2, 3)])
            return job.id
    finally:
        db.dispose()


def job_rows(manage: Manage) -> dict[str, set[int]]:
    """The ids of the jobs that have rows in each jobs table."""
    db = manage.database()
    try:
        with db.transaction(write=False) as session:
            return {"jobs": set(session.scalars(select(Job.id))),
                    "hosts": set(session.scalars(select(JobHost.job_id))),
                    "events": set(session.scalars(select(JobEvent.job_id)))}
    finally:
        db.dispose()


def test_jobs_prune_deletes_finished_jobs_older_than_the_cutoff(manage: Manage) -> None:
    """Finished jobs that ended before the cutoff go, with their hosts and events; recent ones
    and those not finished (however long ago they started) stay."""
    assert manage("db", "upgrade").returncode == 0
    assert manage("demo", "load").returncode == 0
    old = {add_job(manage, JobStatus.SUCCEEDED, 45 * DAY),
           add_job(manage, JobStatus.FAILED, 31 * DAY),
           add_job(manage, JobStatus.CANCELLED, 30 * DAY + dt.timedelta(hours=1))}
    kept = {add_job(manage, JobStatus.SUCCEEDED, 29 * DAY),
            add_job(manage, JobStatus.FAILED, dt.timedelta(minutes=5)),
            add_job(manage, JobStatus.RUNNING, None),
            add_job(manage, JobStatus.PENDING, None)}
    assert job_rows(manage) == {"jobs": old | kept, "hosts": old | kept, "events": old | kept}

    pruned = manage("jobs", "prune", "--older-than", "30d")

    assert pruned.returncode == 0, pruned.stderr
    assert pruned.stdout == "pruned 3 job(s)\n"
    assert job_rows(manage) == {"jobs": kept, "hosts": kept, "events": kept}
    again = manage("jobs", "prune", "--older-than", "30d")
    assert (again.returncode, again.stdout) == (0, "pruned 0 job(s)\n")
    assert job_rows(manage)["jobs"] == kept


@pytest.mark.parametrize("older_than", ["30", "30 days", "2w", "-3d", ""])
def test_jobs_prune_refuses_a_bad_duration(manage: Manage, older_than: str) -> None:
    """Refused before anything is read or deleted, naming the option and the forms it takes."""
    result = manage("jobs", "prune", f"--older-than={older_than}")
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.splitlines()[-1] == (
        f"craton-manage jobs prune: error: argument --older-than: {older_than!r} is not a "
        "duration like 30d, 12h, 90m, 45s")
    assert not manage.data_dir.exists()


def change_records(manage: Manage) -> list[tuple[str, str, str]]:
    """(object type, action, who) of every change record, oldest first."""
    db = manage.database()
    try:
        with db.transaction(write=False) as session:
            return [(row.object_type, row.action.value, row.actor_user) for row in
                    session.scalars(select(Change).order_by(Change.id))]
    finally:
        db.dispose()


def test_changes_prune_keeps_retention_days(manage: Manage) -> None:
    """What craton-manage writes is recorded as its operator's; ``changes prune`` deletes the
    records older than [changes] retention_days (365) or --older-than, and none when
    retention_days is 0 and no --older-than is given."""
    assert manage("db", "upgrade").returncode == 0
    assert manage("demo", "load").returncode == 0
    loaded = change_records(manage)
    assert ("region", "create", f"craton-manage ({getpass.getuser()})") in loaded
    assert {who for _, _, who in loaded} == {f"craton-manage ({getpass.getuser()})"}
    db = manage.database()
    try:
        with db.connection() as connection:
            first = connection.scalar(select(func.min(Change.id)))
            connection.execute(update(Change).where(Change.id == first)
                               .values(created_at=utcnow() - 400 * DAY))
    finally:
        db.dispose()

    manage.env["CRATON_CHANGES_RETENTION_DAYS"] = "0"
    kept = manage("changes", "prune")
    assert (kept.returncode, len(change_records(manage))) == (0, len(loaded)), kept.stderr
    assert "nothing pruned" in kept.stdout
    del manage.env["CRATON_CHANGES_RETENTION_DAYS"]

    pruned = manage("changes", "prune")
    assert pruned.returncode == 0, pruned.stderr
    assert pruned.stdout.startswith("pruned 1 change record(s) made before ")
    assert change_records(manage) == loaded[1:]
    everything = manage("changes", "prune", "--older-than", "0s")
    assert everything.stdout.startswith(f"pruned {len(loaded) - 1} change record(s)")
    assert change_records(manage) == []
