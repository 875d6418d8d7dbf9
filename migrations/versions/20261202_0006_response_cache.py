"""response cache table; promptlog marks cache hits

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 08:00:00.000000

"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = '0006'
down_revision: str | Sequence[str] | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """The cache of model answers by key, and the key (plus whether it was a hit) on each promptlog row."""
    op.create_table(
        'responsecache',
        sa.Column('key', sa.String(length=64), nullable=False),
        sa.Column('bot_id', sa.String(length=100), nullable=False),
        sa.Column('model', sa.String(length=100), nullable=False),
        sa.Column('text', sa.Text(), nullable=False),
        sa.Column('finish_reason', sa.String(length=32), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('key'),
    )
    op.create_index('ix_responsecache_bot_id', 'responsecache', ['bot_id'], unique=False)
    op.create_index('ix_responsecache_expires_at', 'responsecache', ['expires_at'], unique=False)
    with op.batch_alter_table('promptlog') as batch:
        batch.add_column(sa.Column('cache_key', sa.String(length=64), nullable=True))
        batch.add_column(sa.Column('cache_hit', sa.Boolean(), server_default=sa.false(), nullable=False))


def downgrade() -> None:
    """Drop the promptlog columns and the table."""
    with op.batch_alter_table('promptlog') as batch:
        batch.drop_column('cache_hit')
        batch.drop_column('cache_key')
    op.drop_index('ix_responsecache_expires_at', table_name='responsecache')
    op.drop_index('ix_responsecache_bot_id', table_name='responsecache')
    op.drop_table('responsecache')
