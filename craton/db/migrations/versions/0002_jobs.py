"""Jobs: runs of playbooks over a selection, their per-host results and events; where hosts
were last seen; which job wrote a host variable; TaskFlow's persistence tables.

TaskFlow's own migrations keep their revision in ``alembic_version`` too, so they cannot share a
database with ours: its tables are created here, from the definitions of the TaskFlow version
Craton pins, and are part of our schema from now on.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql
from taskflow.persistence.backends.sqlalchemy import tables as taskflow_tables

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE = {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4", "mysql_collate": "utf8mb4_bin"}
TIMESTAMP = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
LONGTEXT = sa.Text().with_variant(mysql.LONGTEXT(), "mysql", "mariadb")
JOB_STATES = ("pending", "running", "succeeded", "failed", "cancelled")
HOST_STATES = ("pending", "running", "ok", "changed", "failed", "unreachable", "skipped")


def _status(states: tuple[str, ...]) -> sa.Enum:
    return sa.Enum(*states, name="status", native_enum=False, length=16,
                   create_constraint=True)


def upgrade() -> None:
    op.create_table(
        "jobs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("region_id", sa.Integer(), nullable=False),
        sa.Column("status", _status(JOB_STATES), nullable=False),
        sa.Column("playbook", sa.String(1024), nullable=False),
        sa.Column("source_url", sa.String(2048)),
        sa.Column("source_ref", sa.String(255)),
        sa.Column("source_pin", sa.String(80)),
        sa.Column("layout", sa.String(16), nullable=False),
        sa.Column("filters_json", sa.Text(), nullable=False),
        sa.Column("plan_json", LONGTEXT, nullable=False),
        sa.Column("forks", sa.Integer(), nullable=False),
        sa.Column("check_mode", sa.Boolean(), nullable=False),
        sa.Column("diff_mode", sa.Boolean(), nullable=False),
        sa.Column("extra_vars_json", LONGTEXT, nullable=False),
        sa.Column("bundle_etag", sa.String(80)),
        sa.Column("engine", sa.String(16), nullable=False),
        sa.Column("created_by", sa.String(255), nullable=False),
        sa.Column("cancel_requested", sa.Boolean(), nullable=False),
        sa.Column("message", sa.Text()),
        sa.Column("started_at", TIMESTAMP),
        sa.Column("finished_at", TIMESTAMP),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["region_id"], ["regions.id"], ondelete="CASCADE",
                                name="fk_jobs_region_id_regions"),
        sa.PrimaryKeyConstraint("id", name="pk_jobs"),
        sa.Index("ix_jobs_region_id_id", "region_id", "id"),
        sa.Index("ix_jobs_status", "status"),
        sqlite_autoincrement=True,
        **TABLE,
    )
    op.create_table(
        "job_hosts",
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("host_name", sa.String(255), nullable=False),
        sa.Column("host_id", sa.Integer()),
        sa.Column("status", _status(HOST_STATES), nullable=False),
        sa.Column("current_task", sa.String(1024)),
        sa.Column("message", sa.Text()),
        sa.Column("started_at", TIMESTAMP),
        sa.Column("finished_at", TIMESTAMP),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], ondelete="CASCADE",
                                name="fk_job_hosts_job_id_jobs"),
        sa.ForeignKeyConstraint(["host_id"], ["hosts.id"], ondelete="SET NULL",
                                name="fk_job_hosts_host_id_hosts"),
        sa.PrimaryKeyConstraint("job_id", "host_name", name="pk_job_hosts"),
        sa.Index("ix_job_hosts_host_id_job_id", "host_id", "job_id"),
        **TABLE,
    )
    op.create_table(
        "job_events",
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("uuid", sa.String(64), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("host", sa.String(255)),
        sa.Column("data_json", LONGTEXT, nullable=False),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], ondelete="CASCADE",
                                name="fk_job_events_job_id_jobs"),
        sa.PrimaryKeyConstraint("job_id", "seq", name="pk_job_events"),
        sa.UniqueConstraint("job_id", "uuid", name="uq_job_events_job_id_uuid"),
        **TABLE,
    )
    with op.batch_alter_table("hosts") as batch:
        batch.add_column(sa.Column("reachable", sa.Boolean()))
        batch.add_column(sa.Column("last_seen_at", TIMESTAMP))
    with op.batch_alter_table("host_variables") as batch:
        batch.add_column(sa.Column("job_id", sa.Integer()))
        batch.create_foreign_key("fk_host_variables_job_id_jobs", "jobs", ["job_id"], ["id"],
                                 ondelete="SET NULL")
    taskflow_metadata = sa.MetaData()
    taskflow_tables.fetch(taskflow_metadata)
    taskflow_metadata.create_all(op.get_bind())


def downgrade() -> None:
    taskflow_metadata = sa.MetaData()
    taskflow_tables.fetch(taskflow_metadata)
    taskflow_metadata.drop_all(op.get_bind())
    with op.batch_alter_table("host_variables") as batch:
        batch.drop_constraint("fk_host_variables_job_id_jobs", type_="foreignkey")
        batch.drop_column("job_id")
    with op.batch_alter_table("hosts") as batch:
        batch.drop_column("last_seen_at")
        batch.drop_column("reachable")
    for table in ("job_events", "job_hosts", "jobs"):
        op.drop_table(table)
