"""The OpenAI-compatible chat API driven by the official `openai` client against the app on a real uvicorn,
with a local fake as the upstream OpenAI server, on both databases."""

import asyncio
import hashlib
from pathlib import Path

import httpx
import openai
import pytest
from sqlalchemy import select

from app.models import ApiKey, AppUser, Message, PromptLog, UsageCounter, UsageRecord
from app.services.pipeline import OFFLINE_MODEL
from tests.chat_helpers import BOT, chat_env
from tests.fake_services import FAKE_AUDIO, FAKE_MODEL, FAKE_TRANSCRIPT, FakeServices, LLMFaults, answer_for
from tests.knowledge_helpers import faq_pairs
from tests.queue_helpers import eventually


async def _rows(env, model):  # type: ignore[no-untyped-def]
    async with env.app.state.db.sessions() as session:
        return list((await session.scalars(select(model))).all())


async def test_keys_are_shown_once_stored_hashed_and_revoked_at_once(database_url: str, tmp_path: Path) -> None:
    async with chat_env(database_url, tmp_path) as env:
        created = await env.new_key(monthly_token_limit=5000)
        secret = created["key"]
        assert secret.startswith("kb-") and len(secret) > 40 and created["prefix"] == secret[:11]
        assert created["bot_id"] == BOT and created["monthly_token_limit"] == 5000 and created["revoked_at"] is None

        listed = (await env.admin.get("/admin/api-keys")).json()
        assert [k["id"] for k in listed] == [created["id"]]
        assert "key" not in listed[0] and "key_hash" not in listed[0] and secret not in str(listed)
        [row] = await _rows(env, ApiKey)
        assert row.key_hash == hashlib.sha256(secret.encode()).hexdigest() and secret not in str(row.model_dump())

        client = env.client(secret)
        assert [m.id for m in (await client.models.list()).data] == [BOT]
        assert (await client.models.retrieve(BOT)).owned_by == "kakao-ai-skill-server"
        with pytest.raises(openai.NotFoundError):
            await client.models.retrieve("gpt-4o")
        assert (await env.admin.delete(f"/admin/api-keys/{created['id']}")).status_code == 204
        with pytest.raises(openai.AuthenticationError) as caught:
            await client.models.list()
        assert caught.value.code == "invalid_api_key"
        assert (await env.admin.get("/admin/api-keys")).json()[0]["revoked_at"] is not None

        missing = await env.admin.delete("/admin/api-keys/999")
        assert missing.status_code == 404 and missing.json()["code"] == "not_found"
        bad = await env.admin.post("/admin/api-keys", json={"name": "x", "monthly_token_limit": 10})
        assert bad.status_code == 422 and bad.json()["code"] == "invalid_input"
        async with httpx.AsyncClient(base_url=env.url) as anonymous_client:
            anonymous = await anonymous_client.post("/admin/api-keys", json={"name": "x", "bot_id": "b"})
        assert anonymous.status_code == 401 and len(await _rows(env, ApiKey)) == 1


async def test_completion_uses_the_template_the_clients_history_and_capped_sampling(
    database_url: str, tmp_path: Path
) -> None:
    async with chat_env(database_url, tmp_path) as env:
        key = await env.new_key()
        history = [
            {"role": "user", "content": "배송은 얼마나 걸려요?"},
            {"role": "assistant", "content": "보통 이틀 걸려요."},
            {"role": "user", "content": "주말에도 배송하나요?"},
        ]
        completion = await env.client(key["key"]).chat.completions.create(
            model=BOT, messages=history, user="alice", max_tokens=99_999, temperature=1.9  # type: ignore[arg-type]
        )
        assert completion.choices[0].message.content == answer_for("주말에도 배송하나요?")
        assert completion.model == BOT and completion.choices[0].finish_reason == "stop"
        assert completion.usage is not None and (completion.usage.prompt_tokens, completion.usage.completion_tokens,
                                                 completion.usage.total_tokens) == (50, 20, 70)

        [sent] = env.fakes.llm_requests
        assert sent["messages"][0]["role"] == "system" and sent["messages"][1:] == history
        assert (sent["max_tokens"], sent["temperature"]) == (1000, 1.0)  # OPENAI_MAX_TOKENS, CHAT_MAX_TEMPERATURE

        [user] = await _rows(env, AppUser)
        assert (user.bot_id, user.kakao_user_id) == (BOT, f"api:{key['id']}:alice")
        messages = await _rows(env, Message)
        assert [(m.role, m.text) for m in sorted(messages, key=lambda m: m.id)] == [
            ("user", "주말에도 배송하나요?"),
            ("assistant", answer_for("주말에도 배송하나요?")),
        ]
        [log] = await _rows(env, PromptLog)
        assert (log.input_tokens, log.output_tokens, log.model) == (50, 20, FAKE_MODEL)
        [usage] = await _rows(env, UsageRecord)
        assert (usage.kind, usage.api_key_id, usage.user_id, usage.message_id) == ("chat", str(key["id"]), user.id, log.msg_id)
        assert (usage.input_tokens, usage.output_tokens, usage.model) == (50, 20, FAKE_MODEL)

        # The seed's paths are the same handlers.
        seed = env.client(key["key"], prefix="/api")
        assert [m.id for m in (await seed.models.list()).data] == [BOT]
        again = await seed.chat.completions.create(model=BOT, messages=[{"role": "user", "content": "안녕"}])
        assert again.choices[0].message.content == answer_for("안녕")


async def test_streaming_sends_chunks_then_usage_and_records_the_usage(database_url: str, tmp_path: Path) -> None:
    async with chat_env(database_url, tmp_path) as env:
        key = await env.new_key()
        client = env.client(key["key"])
        stream = await client.chat.completions.create(
            model=BOT, messages=[{"role": "user", "content": "환불 되나요?"}], stream=True,
            stream_options={"include_usage": True},
        )
        chunks = [chunk async for chunk in stream]
        assert chunks[0].choices[0].delta.role == "assistant"
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert text == answer_for("환불 되나요?")
        assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) > 3  # piece by piece
        assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
        words = len(answer_for("환불 되나요?").split())
        assert chunks[-1].choices == [] and chunks[-1].usage is not None
        assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == (50, words)
        assert env.fakes.llm_requests[0]["stream_options"] == {"include_usage": True}
        [log] = await _rows(env, PromptLog)
        assert (log.input_tokens, log.output_tokens) == (50, words)
        [usage] = await _rows(env, UsageRecord)
        assert (usage.kind, usage.input_tokens, usage.output_tokens) == ("chat", 50, words)  # a streamed call counted

        # Without include_usage: no usage chunk, but upstream is still asked for it and it is still recorded.
        plain = await client.chat.completions.create(model=BOT, messages=[{"role": "user", "content": "네"}], stream=True)
        assert all(c.usage is None for c in [c async for c in plain])
        assert sorted(log.output_tokens for log in await _rows(env, PromptLog)) == sorted([words, len(answer_for("네").split())])

        # /api/chat/stream always streams, with the proxy-buffering header.
        async with httpx.AsyncClient(base_url=env.url) as raw, raw.stream(
            "POST", "/api/chat/stream", headers={"Authorization": f"Bearer {key['key']}"},
            json={"model": BOT, "messages": [{"role": "user", "content": "네"}]},
        ) as response:
            body = (await response.aread()).decode()
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["x-accel-buffering"] == "no"
        assert body.rstrip().endswith("data: [DONE]") and "chat.completion.chunk" in body


async def test_each_error_raises_its_openai_exception(database_url: str, tmp_path: Path) -> None:
    async with chat_env(database_url, tmp_path, chat_rate_limit_per_minute=4) as env:
        key = await env.new_key()
        client = env.client(key["key"])
        ask = [{"role": "user", "content": "안녕"}]

        with pytest.raises(openai.AuthenticationError):
            await env.client("kb-not-a-key").chat.completions.create(model=BOT, messages=ask)  # type: ignore[arg-type]
        with pytest.raises(openai.NotFoundError) as not_found:
            await client.chat.completions.create(model="gpt-4o", messages=ask)  # type: ignore[arg-type]
        assert not_found.value.code == "model_not_found"
        with pytest.raises(openai.BadRequestError) as system:
            await client.chat.completions.create(
                model=BOT, messages=[{"role": "system", "content": "너는 해적이야"}, *ask]  # type: ignore[list-item]
            )
        assert system.value.param == "messages[0].role"
        with pytest.raises(openai.BadRequestError) as last:
            await client.chat.completions.create(model=BOT, messages=[{"role": "assistant", "content": "네"}])
        assert last.value.param == "messages"
        with pytest.raises(openai.BadRequestError) as temperature:
            await client.chat.completions.create(model=BOT, messages=ask, temperature=5)  # type: ignore[arg-type]
        assert temperature.value.param == "temperature"
        assert env.fakes.llm_requests == []  # nothing went upstream

        async with httpx.AsyncClient(base_url=env.url, headers={"Authorization": f"Bearer {key['key']}"}) as raw:
            broken = await raw.post("/v1/chat/completions", content=b'{"model": ', headers={"content-type": "application/json"})
            missing_key = await raw.get("/v1/models", headers={"Authorization": ""})
        assert broken.status_code == 400 and set(broken.json()["error"]) == {"message", "type", "param", "code"}
        assert missing_key.status_code == 401 and missing_key.json()["error"]["type"] == "authentication_error"

        # The four requests with the key counted (the unreadable body was refused before its key was read).
        with pytest.raises(openai.RateLimitError) as limited:
            await client.models.list()
        assert limited.value.code == "rate_limit_exceeded"
        assert int(limited.value.response.headers["retry-after"]) >= 1


async def test_knowledge_passages_and_allowed_system_messages_reach_the_model(database_url: str, tmp_path: Path) -> None:
    async with chat_env(database_url, tmp_path) as env:
        pair = faq_pairs()[0]
        upload = await env.admin.post(
            "/api/knowledge/documents", json={"bot_id": BOT, "title": "FAQ", "type": "faq", "faqs": faq_pairs()[:5]}
        )
        assert upload.status_code == 201, upload.text
        key = await env.new_key(allow_system_messages=True)
        messages = [{"role": "system", "content": "짧게 답해"}, {"role": "user", "content": pair["question"]}]
        await env.client(key["key"]).chat.completions.create(model=BOT, messages=messages)  # type: ignore[arg-type]
        sent = env.fakes.llm_requests[0]["messages"]
        assert sent[0]["role"] == "system" and pair["answer"] in sent[0]["content"]  # the bot's template + passages
        assert sent[1:] == messages


async def test_an_upstream_failure_is_an_openai_server_error_and_stores_nothing(database_url: str, tmp_path: Path) -> None:
    fakes = FakeServices(llm=LLMFaults(error_rate=1.0, errors=("500",)))
    async with chat_env(database_url, tmp_path, fakes=fakes) as env:
        key = await env.new_key(monthly_token_limit=1000)
        client = env.client(key["key"])
        for stream in (False, True):
            with pytest.raises(openai.InternalServerError) as failed:
                await client.chat.completions.create(
                    model=BOT, messages=[{"role": "user", "content": "안녕"}], stream=stream  # type: ignore[call-overload]
                )
            assert failed.value.status_code == 503 and failed.value.code == "upstream_unavailable"
        assert len(fakes.llm_requests) == 2 and await _rows(env, Message) == []
        assert await _rows(env, UsageRecord) == []
        counters = await _rows(env, UsageCounter)
        assert {c.scope for c in counters} == {"api_key", "bot"} and all(c.reserved_tokens == 0 for c in counters)


async def test_a_spent_monthly_budget_is_a_429_and_no_upstream_call(database_url: str, tmp_path: Path) -> None:
    async with chat_env(database_url, tmp_path) as env:
        key = await env.new_key(monthly_token_limit=60)
        client = env.client(key["key"])
        ask = [{"role": "user", "content": "안녕"}]
        await client.chat.completions.create(model=BOT, messages=ask)  # type: ignore[arg-type]  # 70 tokens used
        with pytest.raises(openai.RateLimitError) as spent:
            await client.chat.completions.create(model=BOT, messages=ask)  # type: ignore[arg-type]
        assert spent.value.code == "insufficient_quota" and spent.value.type == "insufficient_quota"
        assert spent.value.response.headers["x-should-retry"] == "false"
        assert len(env.fakes.llm_requests) == 1
        assert [(u.api_key_id, u.total_tokens) for u in await _rows(env, UsageRecord)] == [(str(key["id"]), 70)]
        # Another key of the same bot has its own budget.
        other = await env.new_key(monthly_token_limit=60)
        await env.client(other["key"]).chat.completions.create(model=BOT, messages=ask)  # type: ignore[arg-type]
        counter = next(c for c in await _rows(env, UsageCounter) if (c.scope, c.holder_id) == ("api_key", str(key["id"])))
        assert (counter.used_tokens, counter.reserved_tokens) == (70, 0)


async def test_the_bots_monthly_budget_also_holds_for_its_keys(database_url: str, tmp_path: Path) -> None:
    async with chat_env(database_url, tmp_path, bot_monthly_token_limit=60) as env:
        client = env.client((await env.new_key())["key"])
        ask = [{"role": "user", "content": "안녕"}]
        await client.chat.completions.create(model=BOT, messages=ask)  # type: ignore[arg-type]
        with pytest.raises(openai.RateLimitError) as spent:
            await client.chat.completions.create(model=BOT, messages=ask, stream=True)  # type: ignore[arg-type]
        assert spent.value.code == "insufficient_quota" and "bot's monthly token limit" in spent.value.message


async def test_offline_answers_from_the_knowledge_base_streamed_as_chunks(database_url: str, tmp_path: Path) -> None:
    async with chat_env(database_url, tmp_path, offline=True) as env:
        upload = await env.admin.post(
            "/api/knowledge/documents",
            json={"bot_id": BOT, "title": "FAQ", "type": "faq", "faqs": faq_pairs()[:5]},
        )
        assert upload.status_code == 201, upload.text
        pair = faq_pairs()[0]
        key = await env.new_key()
        stream = await env.client(key["key"]).chat.completions.create(
            model=BOT, messages=[{"role": "user", "content": pair["question"]}], stream=True,
            stream_options={"include_usage": True},
        )
        chunks = [c async for c in stream]
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert pair["answer"] in text
        assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) > 3
        assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens == 0
        [log] = await _rows(env, PromptLog)
        assert log.model == OFFLINE_MODEL and '"title": "FAQ"' in (log.sources or "")
        assert await _rows(env, UsageRecord) == []  # no model call, nothing to count


async def test_a_client_that_leaves_cancels_the_upstream_call(database_url: str, tmp_path: Path) -> None:
    fakes = FakeServices(llm=LLMFaults(chunk_delay=0.3))
    async with chat_env(database_url, tmp_path, fakes=fakes) as env:
        key = await env.new_key()
        stream = await env.client(key["key"]).chat.completions.create(
            model=BOT, messages=[{"role": "user", "content": "길게 설명해 주세요"}], stream=True
        )
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                break  # the first word arrived; the reader goes away
        await stream.close()

        async def upstream_cancelled() -> bool:
            return fakes.streams_cancelled == 1

        await eventually(upstream_cancelled, timeout=10)

        async def stored() -> bool:
            return len(await _rows(env, PromptLog)) == 1

        await eventually(stored, timeout=10)
        answer = [m for m in await _rows(env, Message) if m.role == "assistant"][0].text
        full = answer_for("길게 설명해 주세요")
        assert answer and full.startswith(answer) and len(answer) < len(full)
        [log] = await _rows(env, PromptLog)
        assert log.input_tokens > 0 and log.output_tokens > 0  # estimated: upstream never sent its usage

        async def counted() -> bool:
            return len(await _rows(env, UsageRecord)) == 1

        await eventually(counted, timeout=10)
        [usage] = await _rows(env, UsageRecord)
        assert (usage.input_tokens, usage.output_tokens) == (log.input_tokens, log.output_tokens)


async def test_twenty_parallel_streams_each_get_their_own_answer(database_url: str, tmp_path: Path) -> None:
    fakes = FakeServices(llm=LLMFaults(chunk_delay=0.05))
    async with chat_env(database_url, tmp_path, fakes=fakes) as env:
        key = await env.new_key()
        client = env.client(key["key"])

        async def ask(n: int) -> str:
            stream = await client.chat.completions.create(
                model=BOT, messages=[{"role": "user", "content": f"질문 {n}번"}], stream=True, user=f"user-{n}"
            )
            return "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])

        answers = await asyncio.gather(*(ask(n) for n in range(20)))
        assert answers == [answer_for(f"질문 {n}번") for n in range(20)]
        assert len(await _rows(env, PromptLog)) == 20 and len(await _rows(env, AppUser)) == 20


async def test_long_pauses_get_keep_alive_comments(database_url: str, tmp_path: Path) -> None:
    fakes = FakeServices(llm=LLMFaults(chunk_delay=0.4))
    async with chat_env(database_url, tmp_path, fakes=fakes, chat_keepalive_seconds=0.05) as env:
        key = await env.new_key()
        async with httpx.AsyncClient(base_url=env.url, timeout=20) as raw, raw.stream(
            "POST", "/v1/chat/completions", headers={"Authorization": f"Bearer {key['key']}"},
            json={"model": BOT, "messages": [{"role": "user", "content": "네"}], "stream": True},
        ) as response:
            lines = [line async for line in response.aiter_lines()]
        assert ": keep-alive" in lines and lines[-2:] == ["data: [DONE]", ""]


async def test_speech_is_forwarded_with_the_configured_models(database_url: str, tmp_path: Path) -> None:
    async with chat_env(database_url, tmp_path, audio_max_upload_bytes=4096) as env:
        key = await env.new_key()
        client = env.client(key["key"])
        transcript = await client.audio.transcriptions.create(model=BOT, file=("hello.mp3", b"\x00" * 2000, "audio/mpeg"))
        assert transcript.text == FAKE_TRANSCRIPT
        speech = await client.audio.speech.create(model=BOT, input="안녕하세요", voice="alloy")
        assert speech.content == FAKE_AUDIO + "안녕하세요".encode()
        (stt_path, stt_body), (_, tts_body) = env.fakes.speech_requests
        assert stt_path == "/v1/audio/transcriptions" and b"whisper-1" in stt_body and b'"tts-1"' in tts_body

        with pytest.raises(openai.APIStatusError) as too_large:
            await client.audio.transcriptions.create(model=BOT, file=("big.mp3", b"\x00" * 5000, "audio/mpeg"))
        assert too_large.value.status_code == 413
        with pytest.raises(openai.NotFoundError):
            await client.audio.speech.create(model="other", input="안녕", voice="alloy")
        with pytest.raises(openai.AuthenticationError):
            await env.client("kb-wrong").audio.speech.create(model=BOT, input="안녕", voice="alloy")
        used = sorted(await _rows(env, UsageRecord), key=lambda r: r.model)
        assert [(r.kind, r.model, r.input_tokens, r.api_key_id) for r in used] == [
            ("audio", "tts-1", len("안녕하세요"), str(key["id"])),  # characters spoken
            ("audio", "whisper-1", 3, str(key["id"])),  # seconds heard, as the server reported them
        ]
        assert len(env.fakes.speech_requests) == 2

    async with chat_env(database_url, tmp_path, offline=True) as env:
        key = await env.new_key()
        with pytest.raises(openai.InternalServerError) as unavailable:
            await env.client(key["key"]).audio.speech.create(model=BOT, input="안녕", voice="alloy")
        assert unavailable.value.status_code == 503 and unavailable.value.code == "speech_unavailable"


async def test_the_response_cache_answers_repeated_questions_whole_or_streamed(database_url: str, tmp_path: Path) -> None:
    async with chat_env(database_url, tmp_path) as env:
        client = env.client((await env.new_key())["key"])
        ask = [{"role": "user", "content": "배송비 얼마예요?"}]

        async def streamed(**options: object) -> tuple[str, int]:
            stream = await client.chat.completions.create(model=BOT, messages=ask, stream=True, **options)  # type: ignore[call-overload]
            pieces = [c.choices[0].delta.content async for c in stream if c.choices and c.choices[0].delta.content]
            return "".join(pieces), len(pieces)

        first, _ = await streamed()  # read to its end: cached
        again = await client.chat.completions.create(model=BOT, messages=ask)  # type: ignore[arg-type]
        assert again.choices[0].message.content == first == answer_for("배송비 얼마예요?")
        assert again.usage is not None and again.usage.total_tokens == 0
        text, pieces = await streamed()  # a hit, handed out word by word
        assert text == first and pieces > 3
        assert len(env.fakes.llm_requests) == 1
        await streamed(temperature=0.9)  # other sampling, another answer
        assert len(env.fakes.llm_requests) == 2

        records = sorted(await _rows(env, UsageRecord), key=lambda r: r.id or 0)
        assert [(r.kind, r.cache_hit, r.total_tokens > 0) for r in records] == [
            ("chat", False, True), ("chat", True, False), ("chat", True, False), ("chat", False, True)
        ]
        logs = sorted(await _rows(env, PromptLog), key=lambda log: log.msg_id)
        assert [log.cache_hit for log in logs] == [False, True, True, False]
        assert logs[0].cache_key == logs[1].cache_key != logs[3].cache_key
