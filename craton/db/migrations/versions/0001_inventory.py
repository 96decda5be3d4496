"""The inventory: tenants, regions, hosts, groups, variables, secrets, references.

Revision ID: 0001
Revises:
Create Date: 2026-11-21
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE = {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4", "mysql_collate": "utf8mb4_bin"}
TIMESTAMP = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
LONGTEXT = sa.Text().with_variant(mysql.LONGTEXT(), "mysql", "mariadb")
LONGBLOB = sa.LargeBinary().with_variant(mysql.LONGBLOB(), "mysql", "mariadb")
HOST_STATES = ("defined", "creating", "created", "ready", "stopping", "stopped", "terminated")
SECRET_KINDS = ("ssh_private_key", "pem", "password", "opaque")


def _object(name: str, *columns: sa.SchemaItem) -> None:
    """A mutable object: integer id never reused, timestamps and a version."""
    op.create_table(
        name,
        sa.Column("id", sa.Integer(), nullable=False),
        *columns,
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=f"pk_{name}"),
        sqlite_autoincrement=True,
        **TABLE,
    )


def _fk(column: str, table: str, target: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint([column], [f"{target}.id"], ondelete="CASCADE",
                                   name=f"fk_{table}_{column}_{target}")


def _variables(owner: str, owner_table: str, indexed: bool) -> None:
    name = f"{owner}_variables"
    op.create_table(
        name,
        sa.Column(f"{owner}_id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("value_json", LONGTEXT, nullable=False),
        sa.Column("value_digest", sa.String(20), nullable=False),
        _fk(f"{owner}_id", name, owner_table),
        sa.PrimaryKeyConstraint(f"{owner}_id", "key", name=f"pk_{name}"),
        *([sa.Index(f"ix_{name}_key_value_digest", "key", "value_digest")] if indexed else []),
        **TABLE,
    )


def _link(name: str, left: str, right: str, check: bool) -> None:
    """A many-to-many link between groups (left) and groups or hosts (right)."""
    right_table = "hosts" if right == "host_id" else "groups"
    op.create_table(
        name,
        sa.Column(left, sa.Integer(), nullable=False),
        sa.Column(right, sa.Integer(), nullable=False),
        _fk(left, name, "groups"),
        _fk(right, name, right_table),
        sa.PrimaryKeyConstraint(left, right, name=f"pk_{name}"),
        *([sa.CheckConstraint(f"{left} <> {right}", name=f"ck_{name}_not_self")]
          if check else []),
        sa.Index(f"ix_{name}_{right}", right),
        **TABLE,
    )


def upgrade() -> None:
    _object(
        "tenants",
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("description", sa.Text()),
        sa.UniqueConstraint("name", name="uq_tenants_name"),
    )
    _object(
        "regions",
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("description", sa.Text()),
        _fk("tenant_id", "regions", "tenants"),
        sa.UniqueConstraint("tenant_id", "name", name="uq_regions_tenant_id_name"),
    )
    _object(
        "groups",
        sa.Column("region_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("description", sa.Text()),
        _fk("region_id", "groups", "regions"),
        sa.UniqueConstraint("region_id", "name", name="uq_groups_region_id_name"),
    )
    _object(
        "hosts",
        sa.Column("region_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("ip_address", sa.String(45)),
        sa.Column("fqdn", sa.String(255)),
        sa.Column("ssh_port", sa.Integer()),
        sa.Column("ssh_user", sa.String(64)),
        sa.Column("state", sa.Enum(*HOST_STATES, name="state", native_enum=False, length=16,
                                   create_constraint=True), nullable=False),
        sa.CheckConstraint("ssh_port IS NULL OR (ssh_port BETWEEN 1 AND 65535)",
                           name="ck_hosts_ssh_port"),
        _fk("region_id", "hosts", "regions"),
        sa.UniqueConstraint("region_id", "name", name="uq_hosts_region_id_name"),
        sa.Index("ix_hosts_ip_address", "ip_address"),
        sa.Index("ix_hosts_region_id_state", "region_id", "state"),
    )
    _variables("region", "regions", indexed=False)
    _variables("group", "groups", indexed=True)
    _variables("host", "hosts", indexed=True)
    _link("group_children", "parent_id", "child_id", check=True)
    _link("group_dependencies", "group_id", "depends_on_id", check=True)
    _link("host_groups", "group_id", "host_id", check=False)
    _object(
        "secrets",
        sa.Column("host_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("kind", sa.Enum(*SECRET_KINDS, name="kind", native_enum=False, length=32,
                                  create_constraint=True), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("backend", sa.String(32), nullable=False),
        sa.Column("ciphertext", LONGBLOB, nullable=False),
        _fk("host_id", "secrets", "hosts"),
        sa.UniqueConstraint("host_id", "name", name="uq_secrets_host_id_name"),
    )
    _object(
        "references",
        sa.Column("group_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("url", sa.String(2048), nullable=False),
        sa.Column("ref", sa.String(255)),
        sa.Column("path", sa.String(1024)),
        _fk("group_id", "references", "groups"),
        sa.UniqueConstraint("group_id", "name", name="uq_references_group_id_name"),
    )


def downgrade() -> None:
    for table in ("references", "secrets", "host_groups", "group_dependencies",
                  "group_children", "host_variables", "group_variables", "region_variables",
                  "hosts", "groups", "regions", "tenants"):
        op.drop_table(table)
