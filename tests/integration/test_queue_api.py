"""Admin queue API, user answer status and /metrics on both backends."""

import uuid
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import select

from app.db import Database
from app.main import create_app
from app.models import EventLog, TaskStatus, utcnow
from app.queue import StoredAnswer, beat, claim, complete, fail
from tests.conftest import ADMIN_TOKEN, make_settings
from tests.queue_helpers import add_task, load, make_message

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


async def _claim_one(db: Database):  # type: ignore[no-untyped-def]
    async with db.sessions.begin() as session:
        (task,) = await claim(session, worker_id="w1", limit=1, now=utcnow(), lease_seconds=15)
    return task


async def test_list_tasks_newest_first_with_filter_and_redacted_callback(client: httpx.AsyncClient, db: Database) -> None:
    ids = await make_message(db)
    older = await add_task(db, ids, now=utcnow() - timedelta(seconds=5), callback=True)
    newer = await add_task(db, ids)
    async with db.sessions.begin() as session:
        (task,) = await claim(session, worker_id="w1", limit=1, now=utcnow(), lease_seconds=15)
        await fail(session, task.id, worker_id="w1", error="PermanentError: 401", now=utcnow())

    listed = (await client.get("/admin/ai-tasks", headers=AUTH)).json()
    assert [t["id"] for t in listed] == [str(newer), str(older)]
    failed = (await client.get("/admin/ai-tasks?status=failed", headers=AUTH)).json()
    assert [(t["id"], t["attempts"], t["last_error"]) for t in failed] == [(str(older), 1, "PermanentError: 401")]
    assert failed[0]["callback_url"].endswith("/callback/***")
    assert failed[0]["wait_seconds"] is not None
    page = (await client.get("/admin/ai-tasks?limit=1&offset=1", headers=AUTH)).json()
    assert [t["id"] for t in page] == [str(older)]
    assert (await client.get("/admin/ai-tasks?status=bogus", headers=AUTH)).status_code == 422


async def test_admin_retry(client: httpx.AsyncClient, db: Database) -> None:
    ids = await make_message(db)
    task_id = await add_task(db, ids)
    not_failed = await client.post(f"/admin/ai-tasks/{task_id}/retry", headers=AUTH)
    assert (not_failed.status_code, not_failed.json()["code"]) == (409, "task_not_failed")
    task = await _claim_one(db)
    async with db.sessions.begin() as session:
        await fail(session, task.id, worker_id="w1", error="x", now=utcnow())

    response = await client.post(f"/admin/ai-tasks/{task_id}/retry", headers=AUTH)

    assert response.status_code == 200
    assert (response.json()["status"], response.json()["attempts"]) == ("pending", 0)
    assert (await load(db, task_id)).status == TaskStatus.PENDING
    async with db.sessions() as session:
        events = list((await session.execute(select(EventLog))).scalars())
    assert [(e.event_type, e.detail) for e in events] == [("task_retried_by_admin", str(task_id))]
    missing = await client.post(f"/admin/ai-tasks/{uuid.uuid4()}/retry", headers=AUTH)
    assert (missing.status_code, missing.json()) == (404, {"detail": "task not found", "code": "not_found"})
    assert (await client.post("/admin/ai-tasks/not-a-uuid/retry", headers=AUTH)).status_code == 422


@pytest.mark.parametrize("path", ["/admin/ai-tasks", "/admin/health", "/user/conversation/1/latest-ai-response"])
@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": ADMIN_TOKEN}])
async def test_admin_endpoints_require_the_token(client: httpx.AsyncClient, path: str, headers: dict) -> None:  # type: ignore[type-arg]
    assert (await client.get(path, headers=headers)).status_code == 401
    retry = await client.post(f"/admin/ai-tasks/{uuid.uuid4()}/retry", headers=headers)
    assert retry.status_code == 401


async def test_admin_endpoints_closed_without_a_configured_token(database_url: str) -> None:
    app = create_app(make_settings(database_url, admin_token=None))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        assert (await c.get("/admin/ai-tasks", headers=AUTH)).status_code == 503
        assert (await c.get("/admin/health")).status_code == 503
    await app.state.db.dispose()


async def test_health_reports_queue_workers_and_listen_state(client: httpx.AsyncClient, db: Database) -> None:
    ids = await make_message(db)
    await add_task(db, ids, now=utcnow() - timedelta(seconds=10))
    now = utcnow()
    async with db.sessions.begin() as session:
        await beat(session, worker_id="w-live", hostname="h", pid=1, started_at=now, now=now, in_flight=2,
                   listen_connected=True)
        await beat(session, worker_id="w-gone", hostname="h", pid=2, started_at=now, now=now - timedelta(hours=1),
                   in_flight=0, listen_connected=False)

    body = (await client.get("/admin/health", headers=AUTH)).json()

    assert body["status"] == "ok" and body["database"] == "ok"
    assert body["queue"]["pending"] == 1 and body["oldest_pending_seconds"] >= 10
    assert {w["worker_id"]: w["alive"] for w in body["workers"]} == {"w-live": True, "w-gone": False}
    assert body["live_workers"] == 1
    assert body["listen"] == ("n/a" if db.is_sqlite else "connected")


async def test_health_is_degraded_without_live_workers(client: httpx.AsyncClient) -> None:
    body = (await client.get("/admin/health", headers=AUTH)).json()
    assert (body["status"], body["live_workers"]) == ("degraded", 0)


async def test_user_ai_status(client: httpx.AsyncClient, db: Database) -> None:
    ids = await make_message(db)
    task_id = await add_task(db, ids)
    pending = (await client.get(f"/user/ai-status/{task_id}")).json()
    assert (pending["status"], pending["answer"]) == ("pending", None)
    task = await _claim_one(db)
    async with db.sessions.begin() as session:
        await complete(session, task, worker_id="w1", answer=StoredAnswer(text="답", input_tokens=7), now=utcnow())

    done = (await client.get(f"/user/ai-status/{task_id}")).json()

    assert (done["status"], done["answer"], done["input_tokens"], done["attempts"]) == ("completed", "답", 7, 1)
    assert "callback_url" not in done and "last_error" not in done
    assert (await client.get(f"/user/ai-status/{uuid.uuid4()}")).status_code == 404
    assert (await client.get("/user/ai-status/123")).status_code == 422

    latest = await client.get(f"/user/conversation/{ids[1]}/latest-ai-response", headers=AUTH)
    assert latest.json()["answer"] == "답"
    assert (await client.get("/user/conversation/999/latest-ai-response", headers=AUTH)).status_code == 404


async def test_metrics_exposes_queue_depth_and_worker_series(client: httpx.AsyncClient, db: Database) -> None:
    ids = await make_message(db)
    await add_task(db, ids)
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert 'skill_queue_depth{status="pending"} 1.0' in response.text
    for name in ("skill_task_pickup_seconds", "skill_callbacks_total", "skill_llm_answer_seconds",
                 "skill_tasks_finished_total", "skill_answer_delivered_seconds", "skill_llm_errors_total"):
        assert name in response.text
