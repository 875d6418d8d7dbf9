"""usage records, daily rollup, prices, budgets and alerts

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 08:00:00.000000

"""
from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = '0005'
down_revision: str | Sequence[str] | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# USD per 1M input / output units (list prices, December 2026). Audio models are billed in other units:
# whisper-1 per second of audio ($0.006 a minute), tts-1 per input character ($15 per 1M characters).
SEED_PRICES = [
    ('gpt-4o', 2.50, 10.00),
    ('gpt-4o-mini', 0.15, 0.60),
    ('text-embedding-3-small', 0.02, 0.0),
    ('whisper-1', 100.00, 0.0),
    ('tts-1', 15.00, 0.0),
]


def upgrade() -> None:
    """Add the usage tables, the task's budget reservation and friend flag, and seed the price table."""
    op.create_table('usagecounter',
    sa.Column('scope', sa.String(length=16), nullable=False),
    sa.Column('holder_id', sa.String(length=100), nullable=False),
    sa.Column('period', sa.String(length=7), nullable=False),
    sa.Column('bot_id', sa.String(length=100), nullable=True),
    sa.Column('token_limit', sa.BigInteger(), nullable=False),
    sa.Column('message_limit', sa.Integer(), nullable=False),
    sa.Column('policy', sa.String(length=8), nullable=False),
    sa.Column('used_tokens', sa.BigInteger(), nullable=False),
    sa.Column('reserved_tokens', sa.BigInteger(), nullable=False),
    sa.Column('messages', sa.Integer(), nullable=False),
    sa.Column('alerted_percent', sa.Integer(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('scope', 'holder_id', 'period')
    )
    op.create_table('usagedaily',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('bot_id', sa.String(length=100), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('model', sa.String(length=100), nullable=False),
    sa.Column('requests', sa.BigInteger(), nullable=False),
    sa.Column('cache_hits', sa.BigInteger(), nullable=False),
    sa.Column('input_tokens', sa.BigInteger(), nullable=False),
    sa.Column('output_tokens', sa.BigInteger(), nullable=False),
    sa.Column('total_tokens', sa.BigInteger(), nullable=False),
    sa.Column('cost_usd', sa.Float(), nullable=False),
    sa.Column('unpriced', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('day', 'bot_id', 'user_id', 'model', name='uq_usagedaily_key')
    )
    with op.batch_alter_table('usagedaily', schema=None) as batch_op:
        batch_op.create_index('ix_usagedaily_user_day', ['user_id', 'day'], unique=False)

    op.create_table('usagelimit',
    sa.Column('scope', sa.String(length=16), nullable=False),
    sa.Column('holder_id', sa.String(length=100), nullable=False),
    sa.Column('monthly_token_limit', sa.BigInteger(), nullable=True),
    sa.Column('policy', sa.String(length=8), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('scope', 'holder_id')
    )
    op.create_table('usageprice',
    sa.Column('model', sa.String(length=100), nullable=False),
    sa.Column('input_usd_per_million', sa.Float(), nullable=False),
    sa.Column('output_usd_per_million', sa.Float(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('model')
    )
    op.create_table('usagerolledday',
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('rolled_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('day')
    )
    op.create_table('usagealert',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('scope', sa.String(length=16), nullable=False),
    sa.Column('holder_id', sa.String(length=100), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=True),
    sa.Column('bot_id', sa.String(length=100), nullable=True),
    sa.Column('threshold', sa.Integer(), nullable=False),
    sa.Column('period', sa.String(length=7), nullable=False),
    sa.Column('used', sa.BigInteger(), nullable=False),
    sa.Column('limit_tokens', sa.BigInteger(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['appuser.id'], ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('scope', 'holder_id', 'period', 'threshold', name='uq_usagealert_once')
    )
    with op.batch_alter_table('usagealert', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_usagealert_created_at'), ['created_at'], unique=False)

    op.create_table('usagerecord',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('bot_id', sa.String(length=100), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=True),
    sa.Column('api_key_id', sa.String(length=100), nullable=True),
    sa.Column('model', sa.String(length=100), nullable=False),
    sa.Column('input_tokens', sa.BigInteger(), nullable=False),
    sa.Column('output_tokens', sa.BigInteger(), nullable=False),
    sa.Column('total_tokens', sa.BigInteger(), nullable=False),
    sa.Column('cost_usd', sa.Float(), nullable=True),
    sa.Column('input_usd_per_million', sa.Float(), nullable=True),
    sa.Column('output_usd_per_million', sa.Float(), nullable=True),
    sa.Column('latency_ms', sa.Integer(), nullable=True),
    sa.Column('cache_hit', sa.Boolean(), server_default=sa.false(), nullable=False),
    sa.Column('task_id', sa.Uuid(), nullable=True),
    sa.Column('message_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['appuser.id'], ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('usagerecord', schema=None) as batch_op:
        batch_op.create_index('ix_usagerecord_day', ['day'], unique=False)
        batch_op.create_index('ix_usagerecord_user_day', ['user_id', 'day'], unique=False)

    with op.batch_alter_table('aiprocessingtask', schema=None) as batch_op:
        batch_op.add_column(sa.Column('reserved_tokens', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('user_is_friend', sa.Boolean(), nullable=True))

    prices = sa.table(
        'usageprice', sa.column('model', sa.String), sa.column('input_usd_per_million', sa.Float),
        sa.column('output_usd_per_million', sa.Float), sa.column('updated_at', sa.DateTime(timezone=True)),
    )
    now = datetime(2026, 12, 2, tzinfo=UTC)
    op.bulk_insert(prices, [
        {'model': m, 'input_usd_per_million': i, 'output_usd_per_million': o, 'updated_at': now}
        for m, i, o in SEED_PRICES
    ])


def downgrade() -> None:
    """Drop the usage tables and the task columns."""
    with op.batch_alter_table('aiprocessingtask', schema=None) as batch_op:
        batch_op.drop_column('user_is_friend')
        batch_op.drop_column('reserved_tokens')

    with op.batch_alter_table('usagerecord', schema=None) as batch_op:
        batch_op.drop_index('ix_usagerecord_user_day')
        batch_op.drop_index('ix_usagerecord_day')

    op.drop_table('usagerecord')
    with op.batch_alter_table('usagealert', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_usagealert_created_at'))

    op.drop_table('usagealert')
    op.drop_table('usagerolledday')
    op.drop_table('usageprice')
    op.drop_table('usagelimit')
    with op.batch_alter_table('usagedaily', schema=None) as batch_op:
        batch_op.drop_index('ix_usagedaily_user_day')

    op.drop_table('usagedaily')
    op.drop_table('usagecounter')
