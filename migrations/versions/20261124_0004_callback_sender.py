"""callback sender, send lease and kind

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24 10:00:00.000000

"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = '0004'
down_revision: str | Sequence[str] | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Record who holds a callback POST and until when, so one left `sending` by a dead worker is sent again."""
    with op.batch_alter_table('aiprocessingtask') as batch:
        batch.add_column(sa.Column('callback_sender', sa.String(length=200), nullable=True))
        batch.add_column(sa.Column('callback_lease_expires_at', sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column('callback_kind', sa.String(length=16), nullable=True))
    op.create_index(
        'ix_aiprocessingtask_sending', 'aiprocessingtask', ['callback_lease_expires_at'], unique=False,
        postgresql_where=sa.text("callback_status = 'sending'"), sqlite_where=sa.text("callback_status = 'sending'"),
    )


def downgrade() -> None:
    """Drop the index and the columns."""
    op.drop_index('ix_aiprocessingtask_sending', table_name='aiprocessingtask')
    with op.batch_alter_table('aiprocessingtask') as batch:
        batch.drop_column('callback_kind')
        batch.drop_column('callback_lease_expires_at')
        batch.drop_column('callback_sender')

