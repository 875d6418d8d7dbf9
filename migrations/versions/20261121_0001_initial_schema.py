"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-21 08:17:25.616031

"""
from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = '0001'
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

DEFAULT_SYSTEM_PROMPT = """당신은 {bot_name}의 친절하고 정확한 고객 상담 챗봇입니다.
오늘 날짜: {today}
고객 이름: {user_name}

지켜야 할 원칙:
- 존댓말로, 짧고 명확하게 답하세요. 카카오톡 말풍선이므로 마크다운 서식은 쓰지 마세요.
- 아래 참고 자료가 있으면 그 내용을 우선해서 답하고, 자료에 없는 내용은 지어내지 말고 모른다고 말한 뒤 상담원 연결을 안내하세요.
- 개인정보(주민등록번호, 카드번호, 비밀번호)는 묻지도 받지도 마세요.

고객에 대해 기억하는 내용:
{summary}

참고 자료:
{context}"""


def upgrade() -> None:
    """Create the whole schema and seed the default prompt template."""
    op.create_table('appuser',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('bot_id', sa.String(length=100), nullable=False),
    sa.Column('kakao_user_id', sa.String(length=70), nullable=False),
    sa.Column('plusfriend_user_key', sa.String(length=100), nullable=True),
    sa.Column('name', sa.String(length=20), nullable=True),
    sa.Column('name_mode', sa.Boolean(), server_default=sa.false(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_seen_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('bot_id', 'kakao_user_id', name='uq_appuser_bot_user')
    )
    op.create_table('logmessage',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('level', sa.String(length=16), nullable=False),
    sa.Column('logger', sa.String(length=200), nullable=True),
    sa.Column('message', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_logmessage_created_at'), 'logmessage', ['created_at'], unique=False)
    op.create_index(op.f('ix_logmessage_level'), 'logmessage', ['level'], unique=False)

    op.create_table('prompttemplate',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('bot_id', sa.String(length=100), server_default='', nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('system_prompt', sa.Text(), nullable=False),
    sa.Column('description', sa.String(length=500), nullable=True),
    sa.Column('is_active', sa.Boolean(), server_default=sa.false(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('bot_id', 'name', 'version', name='uq_prompttemplate_version')
    )
    op.create_index('uq_prompttemplate_active', 'prompttemplate', ['bot_id', 'name'], unique=True, postgresql_where=sa.text('is_active'), sqlite_where=sa.text('is_active'))

    op.create_table('workerheartbeat',
    sa.Column('worker_id', sa.String(length=200), nullable=False),
    sa.Column('hostname', sa.String(length=200), nullable=False),
    sa.Column('pid', sa.Integer(), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_seen_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('in_flight', sa.Integer(), nullable=False),
    sa.Column('listen_connected', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('worker_id')
    )
    op.create_index(op.f('ix_workerheartbeat_last_seen_at'), 'workerheartbeat', ['last_seen_at'], unique=False)

    op.create_table('conversation',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_message_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('summarized_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['appuser.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_conversation_user_last', 'conversation', ['user_id', 'last_message_at'], unique=False)

    op.create_table('eventlog',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=True),
    sa.Column('bot_id', sa.String(length=100), nullable=True),
    sa.Column('event_type', sa.String(length=64), nullable=False),
    sa.Column('detail', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['appuser.id'], ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_eventlog_created_at'), 'eventlog', ['created_at'], unique=False)
    op.create_index(op.f('ix_eventlog_event_type'), 'eventlog', ['event_type'], unique=False)
    op.create_index(op.f('ix_eventlog_user_id'), 'eventlog', ['user_id'], unique=False)

    op.create_table('usersummary',
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('summary', sa.Text(), nullable=False),
    sa.Column('conversations', sa.Integer(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['appuser.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('user_id')
    )
    op.create_table('message',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('conversation_id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['conversation_id'], ['conversation.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['appuser.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_message_conversation_id', 'message', ['conversation_id', 'id'], unique=False)
    op.create_index(op.f('ix_message_user_id'), 'message', ['user_id'], unique=False)

    op.create_table('aiprocessingtask',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('bot_id', sa.String(length=100), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('conversation_id', sa.Integer(), nullable=False),
    sa.Column('message_id', sa.Integer(), nullable=False),
    sa.Column('response_message_id', sa.Integer(), nullable=True),
    sa.Column('block_name', sa.String(length=200), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('max_attempts', sa.Integer(), nullable=False),
    sa.Column('run_after', sa.DateTime(timezone=True), nullable=False),
    sa.Column('locked_by', sa.String(length=200), nullable=True),
    sa.Column('lease_expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('callback_url', sa.Text(), nullable=True),
    sa.Column('callback_not_before', sa.DateTime(timezone=True), nullable=True),
    sa.Column('callback_deadline', sa.DateTime(timezone=True), nullable=True),
    sa.Column('callback_status', sa.String(length=16), nullable=False),
    sa.Column('callback_error', sa.Text(), nullable=True),
    sa.Column('ai_response', sa.Text(), nullable=True),
    sa.Column('answer_delivered_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('input_tokens', sa.Integer(), nullable=False),
    sa.Column('output_tokens', sa.Integer(), nullable=False),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('completed_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['conversation_id'], ['conversation.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['message_id'], ['message.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['response_message_id'], ['message.id'], ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['user_id'], ['appuser.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_aiprocessingtask_conversation_id'), 'aiprocessingtask', ['conversation_id'], unique=False)
    op.create_index('ix_aiprocessingtask_lease', 'aiprocessingtask', ['lease_expires_at'], unique=False, postgresql_where=sa.text("status = 'processing'"), sqlite_where=sa.text("status = 'processing'"))
    op.create_index(op.f('ix_aiprocessingtask_message_id'), 'aiprocessingtask', ['message_id'], unique=False)
    op.create_index('ix_aiprocessingtask_pending', 'aiprocessingtask', ['run_after', 'created_at'], unique=False, postgresql_where=sa.text("status = 'pending'"), sqlite_where=sa.text("status = 'pending'"))
    op.create_index('ix_aiprocessingtask_status_created', 'aiprocessingtask', ['status', 'created_at'], unique=False)
    op.create_index('ix_aiprocessingtask_user_status', 'aiprocessingtask', ['user_id', 'status'], unique=False)

    op.create_table('promptlog',
    sa.Column('msg_id', sa.Integer(), nullable=False),
    sa.Column('task_id', sa.Uuid(), nullable=True),
    sa.Column('template_name', sa.String(length=100), nullable=True),
    sa.Column('template_version', sa.Integer(), nullable=True),
    sa.Column('rendered_prompt', sa.Text(), nullable=False),
    sa.Column('model', sa.String(length=100), nullable=True),
    sa.Column('input_tokens', sa.Integer(), nullable=False),
    sa.Column('output_tokens', sa.Integer(), nullable=False),
    sa.Column('latency_ms', sa.Integer(), nullable=True),
    sa.Column('finish_reason', sa.String(length=32), nullable=True),
    sa.Column('sources', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['msg_id'], ['message.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('msg_id')
    )
    op.create_index(op.f('ix_promptlog_task_id'), 'promptlog', ['task_id'], unique=False)
    prompttemplate = sa.table(
        "prompttemplate",
        sa.column("bot_id", sa.String),
        sa.column("name", sa.String),
        sa.column("version", sa.Integer),
        sa.column("system_prompt", sa.Text),
        sa.column("description", sa.String),
        sa.column("is_active", sa.Boolean),
        sa.column("created_at", sa.DateTime(timezone=True)),
    )
    op.bulk_insert(
        prompttemplate,
        [
            {
                "bot_id": "",
                "name": "default",
                "version": 1,
                "system_prompt": DEFAULT_SYSTEM_PROMPT,
                "description": "기본 고객 상담 프롬프트",
                "is_active": True,
                "created_at": datetime.now(UTC),
            }
        ],
    )


def downgrade() -> None:
    """Drop every table (indexes go with them)."""
    op.drop_table("promptlog")
    op.drop_table("aiprocessingtask")
    op.drop_table("message")
    op.drop_table("usersummary")
    op.drop_table("eventlog")
    op.drop_table("conversation")
    op.drop_table("workerheartbeat")
    op.drop_table("prompttemplate")
    op.drop_table("logmessage")
    op.drop_table("appuser")
