"""events.archive_format: how the archive wrote its records, for the ``source`` export.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02

Nullable: events imported before it have none until they are imported again
(``--force``); until then they export in the ``kebab`` and ``snake`` dialects.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A database adopted by the baseline (made before Alembic) already got every column of the
    # current schema, this one included.
    columns = {c["name"] for c in sa.inspect(op.get_bind()).get_columns("events")}
    if "archive_format" not in columns:
        op.add_column("events", sa.Column("archive_format", sa.JSON(), nullable=True))


def downgrade() -> None:
    op.drop_column("events", "archive_format")
