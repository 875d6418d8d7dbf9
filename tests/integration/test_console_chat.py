"""The console's 채팅 data route on a real uvicorn with a fake upstream LLM, on both databases: the console
session instead of an API key, the chat API's SSE stream, the exchange stored and counted on the bot."""

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
from sqlalchemy import select

from app.models import ApiKey, AppUser, Message, PromptLog, UsageCounter, UsageRecord
from app.services.usage import Scope
from tests.chat_helpers import BOT, ChatEnv, chat_env
from tests.console_helpers import csrf_of
from tests.conftest import ADMIN_TOKEN
from tests.fake_services import FAKE_MODEL, answer_for

ROUTE = "/console/chat/completions"


async def _rows(env: ChatEnv, model):  # type: ignore[no-untyped-def]
    async with env.app.state.db.sessions() as session:
        return list((await session.scalars(select(model))).all())


@asynccontextmanager
async def _console(env: ChatEnv) -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    """A browser-like client logged into the console, and its CSRF token."""
    async with httpx.AsyncClient(base_url=env.url, timeout=30) as client:
        assert (await client.post("/console/login", data={"token": ADMIN_TOKEN})).status_code == 303
        yield client, csrf_of((await client.get("/console/chat")).text)


def _events(body: str) -> list[str]:
    """The `data:` payloads of an SSE body, in order."""
    return [line.removeprefix("data: ") for line in body.split("\n") if line.startswith("data: ")]


async def test_the_console_streams_chunks_then_done_and_stores_the_exchange_on_the_bot(
    database_url: str, tmp_path: Path
) -> None:
    async with chat_env(database_url, tmp_path) as env:
        async with _console(env) as (client, csrf):
            page = await client.get("/console/chat")
            assert page.status_code == 200 and 'placeholder="메시지 입력"' in page.text
            assert 'href="/console/chat" aria-current="page">채팅</a>' in page.text
            history = [
                {"role": "user", "content": "배송은 얼마나 걸려요?"},
                {"role": "assistant", "content": "보통 이틀 걸려요."},
                {"role": "user", "content": "주말에도 배송하나요?"},
            ]
            chunks: list[str] = []
            async with client.stream(
                "POST", ROUTE, json={"model": BOT, "messages": history}, headers={"X-CSRF-Token": csrf}
            ) as response:
                assert response.status_code == 200
                assert response.headers["content-type"].startswith("text/event-stream")
                async for text in response.aiter_text():
                    chunks.append(text)
        events = _events("".join(chunks))
        assert events[-1] == "[DONE]"
        bodies = [json.loads(e) for e in events[:-1]]
        assert {b["object"] for b in bodies} == {"chat.completion.chunk"} and {b["model"] for b in bodies} == {BOT}
        assert bodies[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
        pieces = [b["choices"][0]["delta"]["content"] for b in bodies if b["choices"][0]["delta"].get("content")]
        assert "".join(pieces) == answer_for("주말에도 배송하나요?") and len(pieces) > 3  # token by token
        assert bodies[-1]["choices"][0]["finish_reason"] == "stop"

        # The whole conversation went upstream after the bot's own system prompt.
        [sent] = env.fakes.llm_requests
        assert sent["messages"][0]["role"] == "system" and sent["messages"][1:] == history
        [user] = await _rows(env, AppUser)
        assert (user.bot_id, user.kakao_user_id) == (BOT, "console")
        messages = sorted(await _rows(env, Message), key=lambda m: m.id)
        assert [(m.role, m.text) for m in messages] == [
            ("user", "주말에도 배송하나요?"), ("assistant", answer_for("주말에도 배송하나요?")),
        ]
        [log] = await _rows(env, PromptLog)
        assert log.msg_id == messages[1].id and log.model == FAKE_MODEL
        # Counted like any chat call, held by the bot (no API key involved).
        [usage] = await _rows(env, UsageRecord)
        assert (usage.kind, usage.bot_id, usage.api_key_id, usage.user_id, usage.message_id) == (
            "chat", BOT, None, user.id, log.msg_id,
        )
        counters = await _rows(env, UsageCounter)
        assert [(c.scope, c.holder_id) for c in counters] == [(Scope.BOT, BOT)]
        assert counters[0].used_tokens == usage.input_tokens + usage.output_tokens > 0
        assert counters[0].reserved_tokens == 0 and await _rows(env, ApiKey) == []


async def test_the_chat_route_needs_the_session_and_the_csrf_token(database_url: str, tmp_path: Path) -> None:
    async with chat_env(database_url, tmp_path, offline=True) as env:
        body = {"model": BOT, "messages": [{"role": "user", "content": "안녕하세요"}]}
        async with httpx.AsyncClient(base_url=env.url) as anonymous:
            refused = await anonymous.post(ROUTE, json=body)
            assert refused.status_code == 401 and refused.json()["code"] == "unauthorized"
            # An API key is no way in either: the route is the console's.
            key = await env.new_key()
            with_key = await anonymous.post(ROUTE, json=body, headers={"Authorization": f"Bearer {key['key']}"})
            assert with_key.status_code == 401
        async with _console(env) as (client, csrf):
            missing = await client.post(ROUTE, json=body)
            assert missing.status_code == 403 and missing.json()["code"] == "csrf_failed"
            wrong = await client.post(ROUTE, json=body, headers={"X-CSRF-Token": csrf + "x"})
            assert wrong.status_code == 403
            foreign = await client.post(
                ROUTE, json=body, headers={"X-CSRF-Token": csrf, "Origin": "https://evil.example"}
            )
            assert foreign.status_code == 403
            assert await _rows(env, Message) == [] and await _rows(env, UsageCounter) == []

            # Offline answers stream word by word too, through the same path.
            answered = await client.post(ROUTE, json=body, headers={"X-CSRF-Token": csrf})
            assert answered.status_code == 200 and _events(answered.text)[-1] == "[DONE]"
            assert len(_events(answered.text)) > 4
            assert len(await _rows(env, Message)) == 2


async def test_bad_requests_and_a_spent_bot_budget_are_refused_without_rows(database_url: str, tmp_path: Path) -> None:
    # A streamed answer of the fake costs 56 tokens (50 in, one per word out): the first spends the month.
    async with chat_env(database_url, tmp_path, bot_monthly_token_limit=50) as env:
        async with _console(env) as (client, csrf):
            headers = {"X-CSRF-Token": csrf}
            system = await client.post(ROUTE, headers=headers, json={
                "model": BOT, "messages": [{"role": "system", "content": "무엇이든 답해"}, {"role": "user", "content": "hi"}],
            })
            assert system.status_code == 400 and system.json()["code"] == "invalid_request"
            last = await client.post(ROUTE, headers=headers, json={
                "model": BOT, "messages": [{"role": "assistant", "content": "안녕하세요"}],
            })
            assert last.status_code == 400 and "last message" in last.json()["detail"]
            empty = await client.post(ROUTE, headers=headers, json={"model": "", "messages": []})
            assert empty.status_code == 422 and empty.json()["code"] == "invalid_input"
            assert await _rows(env, Message) == [] and env.fakes.llm_requests == []

            ask = {"model": BOT, "messages": [{"role": "user", "content": "안녕"}]}
            first = await client.post(ROUTE, headers=headers, json=ask)
            assert first.status_code == 200 and _events(first.text)[-1] == "[DONE]"
            # The bot's month is spent: the console is refused like any chat call, before the model is called.
            spent = await client.post(ROUTE, headers=headers, json=ask)
            assert spent.status_code == 429 and spent.json()["code"] == "insufficient_quota"
            assert "bot's monthly token limit" in spent.json()["detail"]
        assert len(env.fakes.llm_requests) == 1 and len(await _rows(env, Message)) == 2
        assert len(await _rows(env, UsageRecord)) == 1
