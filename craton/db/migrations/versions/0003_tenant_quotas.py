"""Per-tenant quotas: what a cloud admin set on a tenant instead of the configured default.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE = {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4", "mysql_collate": "utf8mb4_bin"}
QUOTAS = ("hosts", "groups", "secrets", "concurrent_jobs")


def upgrade() -> None:
    op.create_table(
        "tenant_quotas",
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.Enum(*QUOTAS, name="name", native_enum=False, length=32,
                                  create_constraint=True), nullable=False),
        sa.Column("maximum", sa.Integer(), nullable=False),
        # The metadata's naming convention makes this ck_tenant_quotas_maximum, as the model
        # names it.
        sa.CheckConstraint("maximum >= 0", name="maximum"),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE",
                                name="fk_tenant_quotas_tenant_id_tenants"),
        sa.PrimaryKeyConstraint("tenant_id", "name", name="pk_tenant_quotas"),
        **TABLE,
    )


def downgrade() -> None:
    op.drop_table("tenant_quotas")
