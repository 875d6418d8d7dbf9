"""작업: tasks filtered by status, bot and user; one task's detail; retry of a failed one."""

import json
import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from app import queue
from app.api.deps import SessionDep
from app.console.dashboard import CALLBACK_LABELS, STATUS_LABELS
from app.console.deps import ConsoleDep, render
from app.errors import Conflict
from app.kakao import redact_callback_url
from app.models import TaskStatus
from app.services.task_admin import retry_failed_task, task_detail

router = APIRouter(prefix="/console/tasks", include_in_schema=False)
PAGE_SIZE = 50
Filter = Annotated[str, Query(max_length=100)]


@router.get("", response_class=HTMLResponse)
async def task_list(
    request: Request,
    session: SessionDep,
    _: ConsoleDep,
    status: Filter = "",
    bot: Filter = "",
    user: Filter = "",
    page: Annotated[int, Query(ge=1, le=10_000)] = 1,
) -> HTMLResponse:
    chosen = TaskStatus(status) if status in set(TaskStatus) else None
    tasks = await queue.list_tasks(
        session,
        status=chosen,
        bot_id=bot.strip() or None,
        kakao_user_id=user.strip() or None,
        limit=PAGE_SIZE + 1,
        offset=(page - 1) * PAGE_SIZE,
    )
    return render(request, "tasks.html", {
        "tasks": tasks[:PAGE_SIZE],
        "has_next": len(tasks) > PAGE_SIZE,
        "page": page,
        "filters": {"status": chosen.value if chosen else "", "bot": bot, "user": user},
        "status_labels": STATUS_LABELS,
        "callback_labels": CALLBACK_LABELS,
    })


@router.get("/{task_id}", response_class=HTMLResponse)
async def task_page(task_id: uuid.UUID, request: Request, session: SessionDep, _: ConsoleDep) -> HTMLResponse:
    return await _detail(request, session, task_id)


@router.post("/{task_id}/retry", response_class=HTMLResponse)
async def retry(task_id: uuid.UUID, request: Request, session: SessionDep, _: ConsoleDep) -> Response:
    try:
        await retry_failed_task(session, task_id)
    except Conflict:
        return await _detail(request, session, task_id, error="실패한 작업만 다시 시도할 수 있어요.", status_code=409)
    request.app.state.wakeup.notify()
    return RedirectResponse(f"/console/tasks/{task_id}?retried=1", status_code=303)


async def _detail(
    request: Request, session: SessionDep, task_id: uuid.UUID, *, error: str | None = None, status_code: int = 200
) -> HTMLResponse:
    detail = await task_detail(session, task_id)
    log = detail.prompt_log
    return render(request, "task.html", {
        "d": detail,
        "t": detail.task,
        "callback_url": redact_callback_url(detail.task.callback_url) if detail.task.callback_url else None,
        "prompt": _pretty(log.rendered_prompt) if log else None,
        "sources": _pretty(log.sources) if log and log.sources else None,
        "error": error,
        "retried": request.query_params.get("retried") == "1",
        "status_labels": STATUS_LABELS,
        "callback_labels": CALLBACK_LABELS,
    }, status_code=status_code)


def _pretty(text: str) -> str:
    """Stored JSON indented for reading; anything else as it is."""
    try:
        return json.dumps(json.loads(text), ensure_ascii=False, indent=2)
    except ValueError:
        return text
