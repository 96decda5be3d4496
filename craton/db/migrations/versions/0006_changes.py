"""Change records: who changed what, when, in which request, and how.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE = {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4", "mysql_collate": "utf8mb4_bin"}
TIMESTAMP = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
LONGTEXT = sa.Text().with_variant(mysql.LONGTEXT(), "mysql", "mariadb")
# 64 bits on MariaDB; on SQLite only INTEGER PRIMARY KEY autoincrements (and is 64-bit).
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
ACTIONS = ("create", "update", "delete", "submit", "cancel", "revoke")


def upgrade() -> None:
    op.create_table(
        "changes",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("request_id", sa.String(128), nullable=True),
        sa.Column("tenant_id", sa.Integer(), nullable=True),
        sa.Column("region_id", sa.Integer(), nullable=True),
        sa.Column("object_type", sa.String(16), nullable=False),
        sa.Column("object_id", sa.Integer(), nullable=False),
        sa.Column("object_name", sa.String(255), nullable=True),
        sa.Column("action", sa.Enum(*ACTIONS, name="action", native_enum=False, length=16,
                                    create_constraint=True), nullable=False),
        sa.Column("actor_user", sa.String(255), nullable=False),
        sa.Column("actor_tenant_id", sa.Integer(), nullable=True),
        sa.Column("auth_strategy", sa.String(16), nullable=False),
        sa.Column("api_key_name", sa.String(255), nullable=True),
        sa.Column("job_id", sa.Integer(), nullable=True),
        sa.Column("reason", sa.String(500), nullable=True),
        sa.Column("diff_json", LONGTEXT, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_changes"),
        sa.Index("ix_changes_tenant_id_id", "tenant_id", "id"),
        sa.Index("ix_changes_object_type_object_id_id", "object_type", "object_id", "id"),
        sa.Index("ix_changes_actor_user_id", "actor_user", "id"),
        sa.Index("ix_changes_request_id", "request_id"),
        sa.Index("ix_changes_created_at", "created_at"),
        sqlite_autoincrement=True,
        **TABLE,
    )


def downgrade() -> None:
    op.drop_table("changes")
