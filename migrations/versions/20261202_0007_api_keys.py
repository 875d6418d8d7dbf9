"""api keys of the chat API

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 08:00:00.000000

"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = '0007'
down_revision: str | Sequence[str] | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Keys of the OpenAI-compatible chat API, one bot each, stored as the SHA-256 of the secret."""
    op.create_table(
        'apikey',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('name', sa.String(length=100), nullable=False),
        sa.Column('bot_id', sa.String(length=100), nullable=False),
        sa.Column('prefix', sa.String(length=16), nullable=False),
        sa.Column('key_hash', sa.String(length=64), nullable=False),
        sa.Column('monthly_token_limit', sa.Integer(), nullable=True),
        sa.Column('allow_system_messages', sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('key_hash'),
    )
    op.create_index('ix_apikey_bot_id', 'apikey', ['bot_id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_apikey_bot_id', table_name='apikey')
    op.drop_table('apikey')
