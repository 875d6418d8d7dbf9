"""The simulator: real /skill requests from the console, answers delivered to the signed in-process sink, and no
way for an outside Kakao request to use that sink."""

import time

import httpx
import pytest
import respx
from fastapi import FastAPI
from itsdangerous import TimestampSigner
from sqlalchemy import select

from app.config import Settings
from app.models import AIProcessingTask, CallbackStatus
from app.services import simulator
from tests.console_helpers import log_in
from tests.queue_helpers import FakePipeline, eventually, worker_settings
from worker.runtime import Worker


@pytest.fixture
def settings(database_url: str, tmp_path) -> Settings:  # type: ignore[no-untyped-def]
    return worker_settings(database_url).model_copy(update={"chroma_path": str(tmp_path / "chroma")})


async def _tasks(app: FastAPI) -> list[AIProcessingTask]:
    async with app.state.db.sessions() as session:
        return list((await session.execute(select(AIProcessingTask).order_by(AIProcessingTask.created_at))).scalars())


async def _send(client: httpx.AsyncClient, csrf: str, text: str, *, callback: bool = True) -> dict:  # type: ignore[type-arg]
    response = await client.post(
        "/console/simulator/send",
        json={"bot_id": "shop", "user_id": "sim-user", "utterance": text, "callback": callback},
        headers={"X-CSRF-Token": csrf},
    )
    assert response.status_code == 200, response.text
    return response.json()


async def test_callback_answers_reach_the_sink_through_the_real_worker(
    app: FastAPI, client: httpx.AsyncClient, settings: Settings
) -> None:
    assert settings.debug is False and settings.kakao_callback_allow_http is False
    csrf = await log_in(client)
    sent = await _send(client, csrf, "환불은 며칠 걸려요?")
    assert sent["reply"] == {"version": "2.0", "useCallback": True, "data": {"text": "AI가 답변을 생성하고 있어요!"}}
    (task,) = await _tasks(app)
    assert task.callback_url and task.callback_url.startswith("https://simulator.invalid/callback/")
    assert (await client.get(f"/console/simulator/callbacks/{sent['sink']}")).json() == {"deliveries": []}

    # No HTTP request may leave: respx refuses any, and the worker must not even try.
    with respx.mock(assert_all_called=False) as network:
        async with Worker(settings, app.state.db, FakePipeline(), wakeup=app.state.wakeup):
            app.state.wakeup.notify()

            async def delivered() -> bool:
                return bool((await client.get(f"/console/simulator/callbacks/{sent['sink']}")).json()["deliveries"])

            await eventually(delivered)
    assert network.calls.call_count == 0
    (delivery,) = (await client.get(f"/console/simulator/callbacks/{sent['sink']}")).json()["deliveries"]
    assert delivery["kind"] == "answer"
    assert delivery["body"]["template"]["outputs"] == [{"simpleText": {"text": f"answer {task.id}"}}]
    (task,) = await _tasks(app)
    assert task.callback_status == CallbackStatus.SENT and task.answer_delivered_at is not None
    other = (await client.get("/console/simulator/callbacks/" + "0" * 32)).json()
    assert other == {"deliveries": []}


async def test_without_callback_mode_the_reply_carries_the_answer(
    app: FastAPI, client: httpx.AsyncClient, settings: Settings
) -> None:
    csrf = await log_in(client)
    async with Worker(settings, app.state.db, FakePipeline(), wakeup=app.state.wakeup):
        sent = await _send(client, csrf, "배송은 언제 와요?", callback=False)
    (task,) = await _tasks(app)
    assert sent["sink"] is None and task.callback_url is None
    assert sent["reply"]["template"]["outputs"] == [{"simpleText": {"text": f"answer {task.id}"}}]


async def test_the_simulator_passes_the_skill_secret_like_kakao(settings: Settings) -> None:
    from app.main import create_app

    app = create_app(settings.model_copy(update={"kakao_skill_secret": "s3cret", "skill_sync_wait_seconds": 0}))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as client:
        outside = await client.post("/skill", json=_kakao("https://bot-api.kakao.com/v1/bots/b/callback/t"))
        assert outside.status_code == 401
        sent = await _send(client, await log_in(client), "안녕")
    assert sent["status"] == 200 and sent["reply"]["useCallback"] is True
    await app.state.db.dispose()


def _kakao(callback_url: str) -> dict:  # type: ignore[type-arg]
    return {
        "bot": {"id": "shop"},
        "userRequest": {"utterance": "안녕하세요", "user": {"id": "outsider"}, "callbackUrl": callback_url},
    }


async def test_an_outside_request_cannot_use_the_sink(
    app: FastAPI, client: httpx.AsyncClient, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    app.state.settings.skill_sync_wait_seconds = 0
    _, genuine = simulator.new_sink(settings)
    token = genuine.rsplit("/", 1)[1]
    sink_id = token.split(".")[0]
    other_key = simulator._signer(settings.model_copy(update={"admin_token": "someone-elses-token"}))
    assert other_key is not None
    forged = [
        f"https://simulator.invalid/callback/{sink_id}",  # unsigned
        f"https://simulator.invalid/callback/{sink_id}.AAAAAA.{'x' * 27}",  # made-up signature
        "https://simulator.invalid/callback/" + other_key.sign(sink_id).decode(),  # signed with another token
        "https://simulator.invalid/callback/" + TimestampSigner(b"guess", salt="simulator-sink").sign(sink_id).decode(),
        genuine + "?x=1",
        genuine.replace("https://", "http://"),
        genuine.replace("simulator.invalid", "simulator.invalid.evil.example"),
    ]
    for url in forged:
        reply = (await client.post("/skill", json=_kakao(url))).json()
        assert "useCallback" not in reply, url
    # A genuine sink URL stops working after a few minutes: one seen in a log or a screenshot cannot be replayed.
    later = time.time() + simulator.SINK_MAX_AGE_SECONDS + 5
    monkeypatch.setattr("itsdangerous.timed.time.time", lambda: later)
    assert "useCallback" not in (await client.post("/skill", json=_kakao(genuine))).json()
    assert all(task.callback_url is None for task in await _tasks(app))
    monkeypatch.undo()
    # Without ADMIN_TOKEN no sink URL exists at all.
    assert simulator.sink_id(genuine, settings.model_copy(update={"admin_token": None})) is None
    assert simulator.sink_id(genuine, settings) == sink_id


async def test_a_worker_without_the_sink_never_sends_a_sink_url_anywhere(
    app: FastAPI, client: httpx.AsyncClient, settings: Settings
) -> None:
    from app.kakao import text_reply
    from app.models import CallbackKind, utcnow
    from app.queue import claim
    from worker.delivery import Delivery
    from worker.store import QueueStore

    csrf = await log_in(client)
    await _send(client, csrf, "안녕")
    async with app.state.db.sessions.begin() as session:
        (task,) = await claim(session, worker_id="w", limit=1, now=utcnow(), lease_seconds=5)
    with respx.mock(assert_all_called=False) as network:
        async with httpx.AsyncClient() as http:
            delivery = Delivery(settings, QueueStore(app.state.db), http, worker_id="w")
            status = await delivery.send(task, text_reply("hi"), kind=CallbackKind.ANSWER)
    assert status == CallbackStatus.FAILED and network.calls.call_count == 0
