"""knowledge documents

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 10:00:00.000000

"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = '0002'
down_revision: str | Sequence[str] | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add the knowledgedocument table (document metadata; the chunks live in Chroma)."""
    op.create_table('knowledgedocument',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('bot_id', sa.String(length=100), nullable=False),
    sa.Column('source', sa.String(length=255), nullable=False),
    sa.Column('title', sa.String(length=255), nullable=False),
    sa.Column('type', sa.String(length=16), nullable=False),
    sa.Column('category', sa.String(length=100), nullable=True),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('chunk_count', sa.Integer(), nullable=False),
    sa.Column('char_count', sa.Integer(), nullable=False),
    sa.Column('content_hash', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('bot_id', 'source', name='uq_knowledgedocument_bot_source')
    )
    op.create_index('ix_knowledgedocument_bot_type_category', 'knowledgedocument', ['bot_id', 'type', 'category'], unique=False)


def downgrade() -> None:
    """Drop the knowledgedocument table."""
    op.drop_index('ix_knowledgedocument_bot_type_category', table_name='knowledgedocument')
    op.drop_table('knowledgedocument')
