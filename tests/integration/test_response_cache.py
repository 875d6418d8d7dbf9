"""The response cache on both databases, OpenAI mocked by respx: a repeat costs no model call, a changed
context (user, bot, history, name, knowledge, template) misses by construction, purge and TTL end entries."""

import copy
import itertools
import json
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
import respx
from fastapi import FastAPI
from prometheus_client import REGISTRY
from sqlalchemy import func, select

from app.config import Settings
from app.db import Database
from app.kakao import SkillResponse
from app.main import create_app
from app.models import AppUser, PromptLog, ResponseCache, Role, UsageRecord, utcnow
from app.queue import Wakeup
from app.services import prompts, usage
from app.services.knowledge import KnowledgeBase
from app.services.llm import ChatMessage, LLMClient, LLMResult
from app.services.pipeline import Answer, Context, LLMPipeline, OfflinePipeline, build_pipeline
from app.services.response_cache import CachedAnswer, ModelParameters, cache_key, purge, store
from app.services.response_cache import ResponseCache as Cache
from tests.conftest import ADMIN_TOKEN, FIXTURES, make_settings
from tests.fake_services import FakeServices, answer_for, serve
from tests.pipeline_helpers import (
    BOT,
    LLM_BASE_URL,
    LLM_URL,
    add_conversation,
    add_faqs,
    add_user,
    claimed_task,
    completion,
    say,
)
from tests.queue_helpers import eventually
from worker.jobs import WorkerJobs
from worker.runtime import Worker
from worker.store import QueueStore

TEMPLATE = "이름={user_name}\n요약={summary}\n자료={context}"
QUESTION = "배송비는 얼마인가요?"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture
def llm_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"openai_api_key": "sk-test-key-0000", "openai_base_url": LLM_BASE_URL})


@pytest.fixture
async def kb(settings: Settings) -> AsyncIterator[KnowledgeBase]:
    knowledge = KnowledgeBase(settings)
    yield knowledge
    await knowledge.aclose()


@pytest.fixture
async def pipeline(llm_settings: Settings, db: Database, kb: KnowledgeBase) -> AsyncIterator[LLMPipeline]:
    built = build_pipeline(llm_settings, db, knowledge=kb)
    assert isinstance(built, LLMPipeline) and built.cache is not None
    yield built
    await built.llm.aclose()
    await built.cache.aclose()


@pytest.fixture
def llm() -> Iterator[respx.Route]:
    """Every model call answers differently ("답변 1", "답변 2", ...), so a repeated answer can only be cached."""
    with respx.mock(assert_all_called=False) as mock:
        calls = itertools.count(1)
        yield mock.post(LLM_URL).mock(side_effect=lambda _: httpx.Response(200, json=completion(f"답변 {next(calls)}")))


@pytest.fixture
async def admin(app: FastAPI, kb: KnowledgeBase, pipeline: LLMPipeline) -> AsyncIterator[httpx.AsyncClient]:
    """The admin API of the process that runs `pipeline` (as run_server.py shares it with the embedded worker)."""
    app.state.pipeline, app.state.knowledge = pipeline, kb
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver", headers=ADMIN
    ) as client:
        yield client
    await app.state.db.dispose()


async def ask(
    db: Database, pipeline: LLMPipeline | OfflinePipeline, user: str, utterance: str = QUESTION, *,
    name: str | None = None, bot_id: str = BOT, history: tuple[tuple[Role, str], ...] = (),
) -> Answer:
    """A new user's question (after `history` in the same conversation), answered by the pipeline."""
    user_id = await add_user(db, user, name=name, bot_id=bot_id)
    conv = await add_conversation(db, user_id)
    for role, text in history:
        await say(db, conv, user_id, role, text)
    task = await claimed_task(db, user_id, conv, await say(db, conv, user_id, Role.USER, utterance), bot_id=bot_id)
    return await pipeline.answer(task, timeout=20)


async def use_template(db: Database, text: str = TEMPLATE, *, bot_id: str = BOT) -> int | None:
    """Store (and activate) the next version of the default template; returns its id."""
    async with db.sessions() as session:
        return (await prompts.create_version(session, name="default", system_prompt=text, bot_id=bot_id)).id


def counter(name: str) -> float:
    return REGISTRY.get_sample_value(name) or 0.0


async def test_second_user_same_first_question_costs_no_model_call(
    db: Database, pipeline: LLMPipeline, llm: respx.Route
) -> None:
    await use_template(db)
    hits, misses = counter("response_cache_hits_total"), counter("response_cache_misses_total")

    first = await ask(db, pipeline, "u-1")
    second = await ask(db, pipeline, "u-2")

    assert llm.call_count == 1
    assert first.text == second.text == "답변 1"
    assert not first.cache_hit and (first.input_tokens, first.output_tokens) == (120, 30)
    assert second.cache_hit and (second.input_tokens, second.output_tokens) == (0, 0)
    assert second.cache_key == first.cache_key and len(first.cache_key or "") == 64
    assert (second.model, second.finish_reason) == (first.model, "stop")
    assert counter("response_cache_hits_total") == hits + 1
    assert counter("response_cache_misses_total") == misses + 1


async def test_a_hit_is_a_usage_call_of_0_tokens_marked_cache_hit(
    db: Database, pipeline: LLMPipeline, llm: respx.Route
) -> None:
    with usage.collect() as calls:
        await ask(db, pipeline, "u-1")
        await ask(db, pipeline, "u-2")
    assert [(c.kind, c.input_tokens, c.output_tokens, c.cache_hit) for c in calls] == [
        ("answer", 120, 30, False), ("answer", 0, 0, True)
    ]
    assert calls[1].model == calls[0].model == "gpt-4o-2024-08-06"


async def test_whitespace_only_variation_hits_and_the_model_sees_the_normalised_question(
    db: Database, pipeline: LLMPipeline, llm: respx.Route
) -> None:
    await ask(db, pipeline, "u-1", "  배송비는   얼마인가요?\n")
    again = await ask(db, pipeline, "u-2", "배송비는 얼마인가요?")
    tabbed = await ask(db, pipeline, "u-3", "배송비는\t얼마인가요? ")

    assert llm.call_count == 1 and again.cache_hit and tabbed.cache_hit
    assert json.loads(llm.calls[0].request.content)["messages"][-1] == {"role": "user", "content": QUESTION}
    other = await ask(db, pipeline, "u-4", "배송비는얼마인가요?")  # whitespace removed, not collapsed: another text
    assert not other.cache_hit and llm.call_count == 2


async def test_another_bot_misses_and_a_cached_answer_never_crosses_bots(
    db: Database, pipeline: LLMPipeline, llm: respx.Route
) -> None:
    await use_template(db, "같은 템플릿", bot_id="")  # one template for every bot: the messages are identical
    mine = await ask(db, pipeline, "u-1")
    theirs = await ask(db, pipeline, "u-1", bot_id="bot-2")

    assert llm.call_count == 2 and not theirs.cache_hit
    assert (mine.text, theirs.text) == ("답변 1", "답변 2")
    assert mine.cache_key != theirs.cache_key
    assert json.loads(llm.calls[0].request.content)["messages"] == json.loads(llm.calls[1].request.content)["messages"]
    # Even handed another bot's key, a lookup checks the bot stored beside it.
    async with db.engine.connect() as conn:
        assert await store.find(conn, digest=mine.cache_key or "", bot_id="bot-2", now=utcnow()) is None
        assert await store.find(conn, digest=mine.cache_key or "", bot_id=BOT, now=utcnow()) is not None
    assert (await ask(db, pipeline, "u-3", bot_id="bot-2")).text == "답변 2"


async def test_a_follow_up_in_a_conversation_misses(db: Database, pipeline: LLMPipeline, llm: respx.Route) -> None:
    await use_template(db)
    await ask(db, pipeline, "u-1")
    follow_up = await ask(
        db, pipeline, "u-2", history=((Role.USER, "환불은 며칠 걸려요?"), (Role.ASSISTANT, "3일 걸려요."))
    )

    assert not follow_up.cache_hit and follow_up.text == "답변 2" and llm.call_count == 2


async def test_a_different_name_in_the_prompt_misses(db: Database, pipeline: LLMPipeline, llm: respx.Route) -> None:
    await use_template(db)
    minsu = await ask(db, pipeline, "u-1", name="민수")
    jiyoung = await ask(db, pipeline, "u-2", name="지영")
    other_minsu = await ask(db, pipeline, "u-3", name="민수")

    assert (minsu.text, jiyoung.text, other_minsu.text) == ("답변 1", "답변 2", "답변 1")
    assert llm.call_count == 2 and other_minsu.cache_hit

    # The first user changes their name ("/이름 철수") and asks again in a new conversation.
    async with db.sessions.begin() as session:
        user = (await session.execute(select(AppUser).where(AppUser.kakao_user_id == "u-1"))).scalar_one()
        user.name = "철수"
    assert user.id is not None
    conv = await add_conversation(db, user.id)
    task = await claimed_task(db, user.id, conv, await say(db, conv, user.id, Role.USER, QUESTION))
    renamed = await pipeline.answer(task, timeout=20)
    assert not renamed.cache_hit and renamed.text == "답변 3"


async def test_knowledge_upload_replace_and_delete_change_the_key_without_a_purge(
    db: Database, admin: httpx.AsyncClient, pipeline: LLMPipeline, llm: respx.Route
) -> None:
    await use_template(db)
    before = await ask(db, pipeline, "u-1")
    faq = {"bot_id": BOT, "title": "배송 안내", "source": "shipping", "type": "faq",
           "faqs": [{"question": QUESTION, "answer": "기본 배송비는 3,000원이에요."}]}

    uploaded = await admin.post("/api/knowledge/documents", json=faq)
    assert uploaded.status_code == 201, uploaded.text
    after_upload = await ask(db, pipeline, "u-2")
    faq["faqs"] = [{"question": QUESTION, "answer": "기본 배송비는 2,500원으로 내렸어요."}]
    replaced = await admin.post("/api/knowledge/documents", json=faq)
    assert replaced.status_code == 201 and replaced.json()["replaced"] is True
    after_replace = await ask(db, pipeline, "u-3")
    assert (await admin.delete(f"/api/knowledge/documents/{replaced.json()['id']}")).status_code == 204
    after_delete = await ask(db, pipeline, "u-4")

    assert [a.cache_hit for a in (after_upload, after_replace, after_delete)] == [False, False, True]
    assert (before.text, after_upload.text, after_replace.text) == ("답변 1", "답변 2", "답변 3")
    assert "2,500원" in json.loads(llm.calls[2].request.content)["messages"][0]["content"]
    # With the document gone the model would see what it saw first: that answer is right again.
    assert after_delete.text == before.text and llm.call_count == 3


async def test_template_activation_changes_the_key_without_a_purge(
    db: Database, admin: httpx.AsyncClient, pipeline: LLMPipeline, llm: respx.Route
) -> None:
    first_version = await use_template(db, "친절하게 답하세요. {context}")
    await use_template(db, "짧게 답하세요. {context}")
    on_second = await ask(db, pipeline, "u-1")

    activated = await admin.post(f"/admin/prompts/{first_version}/activate")
    assert activated.status_code == 200, activated.text
    on_first = await ask(db, pipeline, "u-2")

    assert not on_first.cache_hit and (on_second.text, on_first.text) == ("답변 1", "답변 2")
    assert (on_second.template_version, on_first.template_version) == (2, 1)
    assert (await ask(db, pipeline, "u-3")).text == "답변 2"


async def test_purge_all_and_by_bot(
    db: Database, admin: httpx.AsyncClient, pipeline: LLMPipeline, llm: respx.Route
) -> None:
    await use_template(db, "공통", bot_id="")
    await ask(db, pipeline, "u-1")
    await ask(db, pipeline, "u-1", bot_id="bot-2")

    purged = await admin.delete("/admin/cache", params={"bot_id": "bot-2"})
    assert purged.status_code == 200 and purged.json() == {"deleted": 1, "bot_id": "bot-2"}
    assert (await ask(db, pipeline, "u-2")).cache_hit
    assert not (await ask(db, pipeline, "u-2", bot_id="bot-2")).cache_hit

    everything = await admin.delete("/admin/cache")
    assert everything.json() == {"deleted": 2, "bot_id": None}
    assert not (await ask(db, pipeline, "u-3")).cache_hit
    assert llm.call_count == 4


@pytest.mark.parametrize(
    ("params", "headers", "status", "code"),
    [
        ({}, {}, 401, "unauthorized"),
        ({"bot_id": ""}, ADMIN, 422, "invalid_input"),
        ({"bot_id": "b" * 101}, ADMIN, 422, "invalid_input"),
    ],
)
async def test_purge_refuses_without_the_token_or_with_a_bad_bot_id(
    client: httpx.AsyncClient, params: dict[str, str], headers: dict[str, str], status: int, code: str
) -> None:
    response = await client.delete("/admin/cache", params=params, headers=headers)
    assert response.status_code == status and response.json()["code"] == code


async def test_an_expired_entry_misses_and_is_pruned(
    llm_settings: Settings, db: Database, kb: KnowledgeBase, llm: respx.Route
) -> None:
    now = [utcnow()]
    cache = Cache(db, ttl_seconds=60, max_entries=10, clock=lambda: now[0])
    pipeline = LLMPipeline(Context(llm_settings, db.sessions, kb), LLMClient(llm_settings), cache)
    await use_template(db)
    await ask(db, pipeline, "u-1")
    now[0] += timedelta(seconds=59)
    assert (await ask(db, pipeline, "u-2")).cache_hit

    now[0] += timedelta(seconds=2)
    assert not (await ask(db, pipeline, "u-3")).cache_hit
    assert llm.call_count == 2
    async with db.engine.begin() as conn:
        assert await store.prune(conn, now=now[0] + timedelta(seconds=61)) == 1
        assert await conn.scalar(select(func.count()).select_from(ResponseCache)) == 0
    await pipeline.llm.aclose()


async def test_memory_alone_never_serves_past_the_ttl(
    llm_settings: Settings, db: Database, kb: KnowledgeBase, llm: respx.Route
) -> None:
    now = [utcnow()]
    cache = Cache(db, ttl_seconds=60, max_entries=10, clock=lambda: now[0])
    pipeline = LLMPipeline(Context(llm_settings, db.sessions, kb), LLMClient(llm_settings), cache)
    await ask(db, pipeline, "u-1")
    assert len(cache) == 1
    async with db.engine.begin() as conn:  # the row lingers (no prune yet) with a later expiry than memory's
        await conn.execute(ResponseCache.__table__.update().values(expires_at=now[0] + timedelta(days=1)))
    now[0] += timedelta(seconds=61)
    assert (await ask(db, pipeline, "u-2")).cache_hit  # memory's copy expired; the row still lives
    now[0] += timedelta(days=2)
    assert not (await ask(db, pipeline, "u-3")).cache_hit and llm.call_count == 2
    await pipeline.llm.aclose()


async def test_ttl_zero_turns_the_cache_off(
    llm_settings: Settings, db: Database, kb: KnowledgeBase, llm: respx.Route
) -> None:
    pipeline = build_pipeline(llm_settings.model_copy(update={"response_cache_ttl_seconds": 0}), db, knowledge=kb)
    assert isinstance(pipeline, LLMPipeline) and pipeline.cache is None
    answers = [await ask(db, pipeline, f"u-{i}") for i in range(2)]
    assert [a.text for a in answers] == ["답변 1", "답변 2"] and answers[0].cache_key is None
    await pipeline.llm.aclose()


async def test_errors_and_cut_off_answers_are_not_cached(
    db: Database, pipeline: LLMPipeline, llm: respx.Route
) -> None:
    replies = iter([
        httpx.Response(400, json={"error": {"message": "bad request", "type": "invalid_request_error"}}),
        httpx.Response(200, json=completion("잘린 답", finish="length")),
        httpx.Response(200, json=completion("온전한 답")),
    ])
    llm.side_effect = lambda request: next(replies)
    with pytest.raises(Exception, match="LLM HTTP 400"):
        await ask(db, pipeline, "u-1")
    assert (await ask(db, pipeline, "u-2")).text == "잘린 답"
    assert (await ask(db, pipeline, "u-3")).text == "온전한 답"
    assert (await ask(db, pipeline, "u-4")).cache_hit and llm.call_count == 3


async def test_offline_answers_are_not_cached(settings: Settings, db: Database, kb: KnowledgeBase) -> None:
    await add_faqs(db, kb)
    offline = build_pipeline(settings, db, knowledge=kb)
    assert isinstance(offline, OfflinePipeline) and offline.cache is None
    answer = await ask(db, offline, "u-1")
    assert answer.cache_key is None and not answer.cache_hit
    async with db.engine.connect() as conn:
        assert await conn.scalar(select(func.count()).select_from(ResponseCache)) == 0


async def test_a_hit_is_stored_like_any_answer_with_its_promptlog_marked(
    db: Database, pipeline: LLMPipeline, llm: respx.Route
) -> None:
    """Through the worker's own store call (raw SQL on PostgreSQL, SQLAlchemy on SQLite)."""
    await use_template(db)
    stored = []
    for user in ("u-1", "u-2"):
        user_id = await add_user(db, user)
        conv = await add_conversation(db, user_id)
        task = await claimed_task(db, user_id, conv, await say(db, conv, user_id, Role.USER, QUESTION))
        answer = await pipeline.answer(task, timeout=20)
        stored.append(await QueueStore(db).complete(task, worker_id="w", answer=answer, now=utcnow()))

    async with db.sessions() as session:
        logs = [await session.get(PromptLog, msg_id) for msg_id in stored]
    miss, hit = logs
    assert miss is not None and hit is not None
    assert (miss.cache_hit, miss.input_tokens, miss.output_tokens) == (False, 120, 30)
    assert (hit.cache_hit, hit.input_tokens, hit.output_tokens) == (True, 0, 0)
    assert hit.cache_key == miss.cache_key and hit.rendered_prompt == miss.rendered_prompt
    assert llm.call_count == 1


async def test_a_purge_elsewhere_clears_this_process_memory(llm_settings: Settings, db: Database) -> None:
    """On PostgreSQL a purge NOTIFYs: another process's in-memory entries go too, not only the rows."""
    if not db.is_postgres:
        pytest.skip("LISTEN/NOTIFY is PostgreSQL only; on SQLite the purging process holds the only memory")
    here = Cache.from_settings(llm_settings, db)
    assert here is not None
    key = cache_key("bot-x", ModelParameters("gpt-4o", 0.2, 1000, None), [ChatMessage(role="user", content="안녕")])
    result = LLMResult(text="안녕하세요", input_tokens=1, output_tokens=1, model="gpt-4o", latency_ms=1,
                       finish_reason="stop")
    assert await here.get(key) is None  # the first lookup starts listening

    async def listening() -> bool:
        return here.listening

    await eventually(listening)
    await here.put(key, result)
    assert len(here) == 1 and await here.get(key) is not None

    assert await purge(db) == 1  # as another process (no local cache given)

    async def forgotten() -> bool:
        return len(here) == 0

    await eventually(forgotten)
    assert await here.get(key) is None
    await here.aclose()


async def test_prune_job_deletes_only_expired_answers(settings: Settings, db: Database) -> None:
    now = utcnow()
    async with db.engine.begin() as conn:
        for key, expires in (("a" * 64, now - timedelta(seconds=1)), ("b" * 64, now + timedelta(hours=1))):
            await store.save(conn, digest=key, answer=CachedAnswer(BOT, "m", "t", "stop", expires), now=now)
    jobs = WorkerJobs(settings=settings, db=db, pool=None, wakeup=Wakeup(), worker_id="w",  # type: ignore[arg-type]
                      listener=None, llm=None, usage=None)  # type: ignore[arg-type] # prune uses neither
    await jobs.prune()
    async with db.engine.connect() as conn:
        assert list(await conn.scalars(select(ResponseCache.__table__.c.key))) == ["b" * 64]


async def test_cache_counters_are_on_metrics(client: httpx.AsyncClient) -> None:
    body = (await client.get("/metrics")).text
    assert "response_cache_hits_total" in body and "response_cache_misses_total" in body


async def test_a_hit_is_delivered_through_the_kakao_callback(database_url: str, tmp_path: Path) -> None:
    """Two Kakao users send the same first question over real HTTP: one model call, two identical callbacks."""
    fakes = FakeServices()
    request = json.loads((FIXTURES / "skill_request_callback.json").read_text())
    async with serve(fakes.app) as fake_url:
        settings = make_settings(
            database_url, chroma_path=str(tmp_path / "chroma"), openai_api_key="sk-e2e-test-key-0000",
            openai_base_url=f"{fake_url}/v1", kakao_callback_allow_http=True, kakao_callback_allowed_hosts="127.0.0.1",
            worker_poll_seconds=0.2,
        )
        app = create_app(settings)
        pipeline = build_pipeline(settings, app.state.db)
        async with (
            serve(app) as api_url,
            Worker(settings, app.state.db, pipeline, wakeup=app.state.wakeup),
            httpx.AsyncClient(base_url=api_url, timeout=10) as kakao,
        ):
            for turn, user in enumerate(["kakao-user-1", "kakao-user-2"], 1):
                body = copy.deepcopy(request)
                body["userRequest"]["user"]["id"] = user
                body["userRequest"]["callbackUrl"] = f"{fake_url}/v1/bots/{body['bot']['id']}/callback/token-{turn}"
                assert (await kakao.post("/skill", json=body)).json()["useCallback"] is True

                async def answered(count: int = turn) -> bool:
                    return len(fakes.callbacks) == count

                await eventually(answered, timeout=15)
        await pipeline.aclose()
        async with app.state.db.sessions() as session:
            logs = (await session.execute(select(PromptLog).order_by(PromptLog.msg_id))).scalars().all()
            records = (await session.execute(select(UsageRecord).order_by(UsageRecord.id))).scalars().all()
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t", headers=ADMIN) as c:
            stats = (await c.get("/admin/usage/statistics", params={"period": "day"})).json()
        await app.state.db.dispose()

    assert len(fakes.llm_requests) == 1
    replies = [SkillResponse.model_validate(body).template for _, body in fakes.callbacks]
    texts = [reply.outputs[0].simple_text.text for reply in replies]  # type: ignore[union-attr]
    assert texts == [answer_for(request["userRequest"]["utterance"])] * 2
    assert [(log.cache_hit, log.output_tokens) for log in logs] == [(False, 20), (True, 0)]
    # Usage: one row per answer, the hit a call of 0 tokens counted in the statistics' cache_hits.
    assert [(r.kind, r.cache_hit, r.total_tokens) for r in records] == [("answer", False, 70), ("answer", True, 0)]
    assert (stats["requests"], stats["cache_hits"], stats["total_tokens"]) == (2, 1, 70)


async def test_a_standalone_worker_on_sqlite_keeps_no_memory(llm_settings: Settings, db: Database) -> None:
    """No NOTIFY on SQLite: only the API's process (which runs the purge) may hold answers in memory."""
    if db.is_postgres:
        pytest.skip("on PostgreSQL every process listens for purges (test_a_purge_elsewhere_clears_...)")
    worker_cache = Cache.from_settings(llm_settings, db, api_process=False)
    assert worker_cache is not None
    key = cache_key(BOT, ModelParameters("gpt-4o", 0.2, 1000, None), [ChatMessage(role="user", content="안녕")])
    await worker_cache.put(key, LLMResult(text="안녕하세요", input_tokens=1, output_tokens=1, model="gpt-4o",
                                          latency_ms=1, finish_reason="stop"))
    assert len(worker_cache) == 0
    assert await purge(db) == 1  # from the API's process
    assert await worker_cache.get(key) is None
    await worker_cache.aclose()
