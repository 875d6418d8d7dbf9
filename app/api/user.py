"""Answer status for a task, and the latest answer of a conversation."""

import uuid
from datetime import datetime

from fastapi import APIRouter
from pydantic import BaseModel, Field

from app import queue
from app.api.deps import ADMIN_ERRORS, AdminDep, RowId, SessionDep, error_responses
from app.errors import NotFound
from app.models import AIProcessingTask, TaskStatus

router = APIRouter(prefix="/user", tags=["user"])


class AnswerStatus(BaseModel):
    """Where a task stands; `answer` only once it is completed."""

    task_id: uuid.UUID
    conversation_id: int
    status: str
    attempts: int
    answer: str | None
    ai_response: str | None = Field(description="the same as `answer` (seed 003's name)")
    input_tokens: int
    output_tokens: int
    tokens_used: int = Field(description="input_tokens + output_tokens (seed 003's name)")
    created_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    answer_delivered_at: datetime | None

    @classmethod
    def of(cls, task: AIProcessingTask) -> "AnswerStatus":
        answer = task.ai_response if task.status == TaskStatus.COMPLETED else None
        return cls(
            task_id=task.id,
            conversation_id=task.conversation_id,
            status=task.status,
            attempts=task.attempts,
            answer=answer,
            ai_response=answer,
            input_tokens=task.input_tokens,
            output_tokens=task.output_tokens,
            tokens_used=task.input_tokens + task.output_tokens,
            created_at=task.created_at,
            started_at=task.started_at,
            completed_at=task.completed_at,
            answer_delivered_at=task.answer_delivered_at,
        )


# The random task id is the capability here; conversation ids are guessable, so that read is admin-only.
@router.get(
    "/ai-status/{task_id}", response_model=AnswerStatus, summary="Status and answer of one task",
    responses=error_responses(404),
)
async def ai_status(task_id: uuid.UUID, session: SessionDep) -> AnswerStatus:
    task = await queue.get_task(session, task_id)
    if task is None:
        raise NotFound("task not found")
    return AnswerStatus.of(task)


@router.get(
    "/conversation/{conversation_id}/latest-ai-response",
    response_model=AnswerStatus,
    summary="The latest answered task of a conversation (admin token required)",
    responses={**ADMIN_ERRORS, **error_responses(404)},
)
async def latest_ai_response(conversation_id: RowId, session: SessionDep, _: AdminDep) -> AnswerStatus:
    task = await queue.latest_answered_task(session, conversation_id)
    if task is None:
        raise NotFound("no answer in this conversation")
    return AnswerStatus.of(task)
