"""Admin API for the answer queue: list tasks, retry a failed one, queue and worker health."""

import uuid
from datetime import datetime, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from app import queue
from app.api.deps import ADMIN_ERRORS, Offset, SessionDep, error_responses, require_admin
from app.kakao import redact_callback_url
from app.models import AIProcessingTask, TaskStatus, WorkerHeartbeat, utcnow
from app.services.task_admin import retry_failed_task

router = APIRouter(
    prefix="/admin", tags=["admin: queue"], dependencies=[Depends(require_admin)], responses=ADMIN_ERRORS
)


class TaskView(BaseModel):
    """One task as the admin sees it; the callback URL is shown without its token."""

    id: uuid.UUID
    bot_id: str
    user_id: int
    conversation_id: int
    message_id: int
    block_name: str | None
    status: str
    attempts: int
    max_attempts: int
    last_error: str | None
    run_after: datetime
    locked_by: str | None
    lease_expires_at: datetime | None
    callback_url: str | None
    callback_status: str
    callback_error: str | None
    callback_deadline: datetime | None
    ai_response: str | None
    answer_delivered_at: datetime | None
    input_tokens: int
    output_tokens: int
    created_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    wait_seconds: float | None
    total_seconds: float | None

    @classmethod
    def of(cls, task: AIProcessingTask) -> "TaskView":
        values = task.model_dump()
        values["callback_url"] = redact_callback_url(task.callback_url) if task.callback_url else None
        values["wait_seconds"] = _seconds(task.created_at, task.started_at)
        values["total_seconds"] = _seconds(task.created_at, task.completed_at)
        return cls.model_validate(values)


class WorkerView(BaseModel):
    worker_id: str
    hostname: str
    pid: int
    started_at: datetime
    last_seen_at: datetime
    alive: bool
    in_flight: int
    listen_connected: bool


class QueueHealth(BaseModel):
    status: Literal["ok", "degraded"]
    database: Literal["ok"]
    queue: dict[str, int]
    oldest_pending_seconds: float | None
    workers: list[WorkerView]
    live_workers: int
    listen: Literal["n/a", "connected", "disconnected"]


def _seconds(start: datetime, end: datetime | None) -> float | None:
    return round((end - start).total_seconds(), 3) if end else None


@router.get("/ai-tasks", response_model=list[TaskView], summary="Tasks, newest first")
async def list_tasks(
    session: SessionDep,
    status_: Annotated[TaskStatus | None, Query(alias="status")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Offset = 0,
) -> list[TaskView]:
    tasks = await queue.list_tasks(session, status=status_, limit=limit, offset=offset)
    return [TaskView.of(task) for task in tasks]


@router.post(
    "/ai-tasks/{task_id}/retry", response_model=TaskView, summary="Put a failed task back in the queue",
    responses=error_responses(404, 409),
)
async def retry_task(task_id: uuid.UUID, session: SessionDep, request: Request) -> TaskView:
    task = await retry_failed_task(session, task_id)
    request.app.state.wakeup.notify()
    return TaskView.of(task)


@router.get("/health", response_model=QueueHealth, summary="Database, queue depth, workers, LISTEN state")
async def health(session: SessionDep, request: Request) -> QueueHealth | JSONResponse:
    settings = request.app.state.settings
    now = utcnow()
    try:
        stats = await queue.stats(session, now=now)
        workers = await queue.list_workers(session)
    except Exception as exc:  # noqa: BLE001 - any database failure is reported, not raised
        return JSONResponse({"status": "error", "database": type(exc).__name__}, status_code=503)
    # A worker beats three times per lease; two missed leases mean it is gone.
    alive_since = now - timedelta(seconds=2 * settings.task_lease_seconds)
    views = [_worker_view(w, alive_since) for w in workers]
    live = [w for w in views if w.alive]
    listen: Literal["n/a", "connected", "disconnected"] = "n/a"
    if not settings.is_sqlite and live:
        listen = "connected" if all(w.listen_connected for w in live) else "disconnected"
    return QueueHealth(
        status="ok" if live and listen != "disconnected" else "degraded",
        database="ok",
        queue=stats.by_status,
        oldest_pending_seconds=stats.oldest_pending_seconds,
        workers=views,
        live_workers=len(live),
        listen=listen,
    )


def _worker_view(worker: WorkerHeartbeat, alive_since: datetime) -> WorkerView:
    return WorkerView.model_validate({**worker.model_dump(), "alive": worker.last_seen_at >= alive_since})
