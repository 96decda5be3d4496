"""A job acts with its submitter's rights: the roles it runs with, and whether its bundle holds
its hosts' secrets. Jobs recorded before ran as their tenant's admin, with secrets.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("submitter_roles", sa.String(255), nullable=False,
                                   server_default="admin"))
        batch.add_column(sa.Column("secrets", sa.String(16), nullable=False,
                                   server_default="included"))


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("secrets")
        batch.drop_column("submitter_roles")
