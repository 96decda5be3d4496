"""Tenants record the Keystone project whose tokens act in them ([api] auth_strategy =
keystone).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # ADD COLUMN and CREATE INDEX in place: a batch copy of tenants would drop the old table,
    # and with foreign keys on that deletes everything every tenant has.
    op.add_column("tenants", sa.Column("keystone_project_id", sa.String(64), nullable=True))
    op.create_index("ix_tenants_keystone_project_id", "tenants", ["keystone_project_id"],
                    unique=True)


def downgrade() -> None:
    op.drop_index("ix_tenants_keystone_project_id", table_name="tenants")
    op.drop_column("tenants", "keystone_project_id")
