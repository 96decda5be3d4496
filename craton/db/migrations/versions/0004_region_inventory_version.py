"""A region's inventory version: moves on in the same transaction as every write that can
change a bundle of the region, so a bundle's ETag is known without reading the region's hosts.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Regions that exist already start at 1, as new ones do. ETags given out before the
    # upgrade were digests of other inputs, so none of them names a state after it.
    op.add_column("regions", sa.Column("inventory_version", sa.Integer(), nullable=False,
                                       server_default=sa.text("1")))


def downgrade() -> None:
    # A plain DROP COLUMN (SQLite >= 3.35): a batch copy of the table would drop the old one,
    # and with foreign keys on that deletes every group and host of every region.
    op.drop_column("regions", "inventory_version")
