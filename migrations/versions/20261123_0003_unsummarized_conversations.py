"""unsummarized conversations index

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 10:00:00.000000

"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = '0003'
down_revision: str | Sequence[str] | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Index the conversations still to summarise, so the summary job never scans the whole table."""
    op.create_index(
        'ix_conversation_unsummarized', 'conversation', ['last_message_at'], unique=False,
        postgresql_where=sa.text('summarized_at IS NULL'), sqlite_where=sa.text('summarized_at IS NULL'),
    )


def downgrade() -> None:
    """Drop the index."""
    op.drop_index('ix_conversation_unsummarized', table_name='conversation')
