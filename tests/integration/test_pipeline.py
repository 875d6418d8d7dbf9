"""The answer pipeline on both databases, with OpenAI mocked by respx: exactly what the LLM is sent."""

import asyncio
import json
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
import respx
from loguru import logger
from sqlalchemy import select

from app.config import Settings
from app.db import Database
from app.kakao import text_reply
from app.kakao.limits import MAX_LABEL_CHARS
from app.models import AppUser, EventLog, PromptLog, Role, utcnow
from app.queue import complete
from app.services import prompts
from app.services.errors import PermanentError, RetryableError
from app.services.knowledge import KnowledgeBase, format_context
from app.services.knowledge.offline import FAQ_INTRO, NOT_FOUND
from app.services.llm import ChatMessage
from app.services.memory import trim_history
from app.services.pipeline import (
    OFFLINE_MODEL,
    LLMPipeline,
    OfflinePipeline,
    api_host,
    build_pipeline,
)
from app.services.tokens import MESSAGE_OVERHEAD, count_tokens
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

TEMPLATE = "봇={bot_name} 이름={user_name}\n요약={summary}\n자료={context}\n질문={utterance}"


@pytest.fixture
def llm_settings(settings: Settings) -> Settings:
    return settings.model_copy(
        update={"openai_api_key": "sk-test-key-0000", "openai_base_url": LLM_BASE_URL, "bot_name": "상담도우미"}
    )


@pytest.fixture
async def kb(settings: Settings) -> AsyncIterator[KnowledgeBase]:
    knowledge = KnowledgeBase(settings)
    yield knowledge
    await knowledge.aclose()


@pytest.fixture
async def pipeline(llm_settings: Settings, db: Database, kb: KnowledgeBase) -> AsyncIterator[LLMPipeline]:
    built = build_pipeline(llm_settings, db, knowledge=kb)
    assert isinstance(built, LLMPipeline)
    yield built
    await built.llm.aclose()


@pytest.fixture
def llm() -> Iterator[respx.Route]:
    with respx.mock(assert_all_called=False) as mock:
        yield mock.post(LLM_URL).respond(200, json=completion("배송비는 3,000원이에요."))


def sent(route: respx.Route, call: int = -1) -> list[dict[str, str]]:
    return json.loads(route.calls[call].request.content)["messages"]


async def use_template(db: Database, text: str = TEMPLATE, *, name: str = "default") -> None:
    async with db.sessions() as session:
        await prompts.create_version(session, name=name, system_prompt=text, bot_id=BOT)


async def test_multi_turn_request_is_system_then_history_then_the_utterance(
    db: Database, kb: KnowledgeBase, pipeline: LLMPipeline, llm: respx.Route
) -> None:
    await use_template(db)
    await add_faqs(db, kb)
    user = await add_user(db, "u-1", name="민수", summary="지난번에 반품 방법을 물어봤어요.")
    conv = await add_conversation(db, user)
    turns = [
        (Role.USER, "안녕하세요"),
        (Role.ASSISTANT, "안녕하세요, 민수님! 무엇을 도와드릴까요?"),
        (Role.USER, "반품은 며칠 안에 해야 하나요?"),
        (Role.ASSISTANT, "받으신 날부터 7일 안에 신청해 주세요."),
    ]
    for role, text in turns:
        await say(db, conv, user, role, text)
    question = "배송비는 얼마인가요?"
    task = await claimed_task(db, user, conv, await say(db, conv, user, Role.USER, question))

    answer = await pipeline.answer(task, timeout=20)

    passages = await kb.retrieve(BOT, question)
    assert passages and passages[0].answer and "3,000원" in passages[0].answer
    expected = [
        {
            "role": "system",
            "content": f"봇=상담도우미 이름=민수\n요약=지난번에 반품 방법을 물어봤어요.\n"
            f"자료={format_context(passages)}\n질문={question}",
        },
        *({"role": role.value, "content": text} for role, text in turns),
        {"role": "user", "content": question},
    ]
    assert sent(llm) == expected
    body = json.loads(llm.calls[0].request.content)
    assert (body["model"], body["temperature"], body["max_tokens"]) == ("gpt-4o", 0.2, 1000)
    assert answer.text == "배송비는 3,000원이에요."
    assert (answer.model, answer.input_tokens, answer.output_tokens, answer.finish_reason) == (
        "gpt-4o-2024-08-06", 120, 30, "stop")
    assert (answer.template_name, answer.template_version) == ("default", 1)
    assert json.loads(answer.rendered_prompt or "") == expected
    assert [s["chunk_id"] for s in json.loads(answer.sources or "")] == [p.chunk_id for p in passages]
    assert answer.latency_ms is not None and answer.quick_replies == []


async def test_history_is_trimmed_oldest_first_to_the_budget(
    llm_settings: Settings, db: Database, kb: KnowledgeBase, llm: respx.Route
) -> None:
    user = await add_user(db, "u-1")
    conv = await add_conversation(db, user)
    history = [f"{i}번째 메시지: " + "가나다라마바사" * (i + 1) for i in range(6)]
    for i, text in enumerate(history):
        await say(db, conv, user, Role.USER if i % 2 == 0 else Role.ASSISTANT, text)
    message_id = await say(db, conv, user, Role.USER, "지금 질문")
    cost = [MESSAGE_OVERHEAD + count_tokens(text) for text in history]

    for budget, kept in [(cost[4] + cost[5], history[4:]), (cost[4] + cost[5] - 1, history[5:]), (0, [])]:
        pipeline = build_pipeline(llm_settings.model_copy(update={"history_token_budget": budget}), db, knowledge=kb)
        assert isinstance(pipeline, LLMPipeline)
        task = await claimed_task(db, user, conv, message_id)
        await pipeline.answer(task, timeout=20)
        await pipeline.llm.aclose()
        messages = sent(llm)
        assert [m["content"] for m in messages[1:-1]] == kept
        assert messages[-1] == {"role": "user", "content": "지금 질문"}
        assert messages[0]["role"] == "system"


def test_trim_keeps_the_newest_contiguous_messages() -> None:
    messages = [ChatMessage(role="user", content="가" * n) for n in (1, 200, 1, 1)]
    small = MESSAGE_OVERHEAD + count_tokens("가")
    assert trim_history(messages, small * 2) == messages[2:]
    # The long message does not fit; the short one before it is not taken out of order.
    assert trim_history(messages, small * 3) == messages[2:]
    assert trim_history(messages, 10_000) == messages


async def test_interleaved_users_and_conversations_never_leak(
    db: Database, kb: KnowledgeBase, pipeline: LLMPipeline, llm: respx.Route
) -> None:
    await use_template(db, "이름={user_name} 요약={summary}")
    alice = await add_user(db, "alice", name="앨리스", summary="앨리스의 요약")
    bob = await add_user(db, "bob", name="밥", summary="밥의 요약")
    alice_old = await add_conversation(db, alice)
    await say(db, alice_old, alice, Role.USER, "앨리스의 지난 대화")
    alice_conv = await add_conversation(db, alice)
    bob_conv = await add_conversation(db, bob)
    await say(db, alice_conv, alice, Role.USER, "앨리스 질문 1")
    await say(db, bob_conv, bob, Role.USER, "밥 질문 1")
    await say(db, bob_conv, bob, Role.ASSISTANT, "밥 답변 1")
    await say(db, alice_conv, alice, Role.ASSISTANT, "앨리스 답변 1")
    alice_now = await say(db, alice_conv, alice, Role.USER, "앨리스 질문 2")
    bob_now = await say(db, bob_conv, bob, Role.USER, "밥 질문 2")
    await say(db, alice_conv, alice, Role.USER, "앨리스 질문 3 (더 나중)")
    alice_task = await claimed_task(db, alice, alice_conv, alice_now)
    bob_task = await claimed_task(db, bob, bob_conv, bob_now)

    await asyncio.gather(pipeline.answer(alice_task, timeout=20), pipeline.answer(bob_task, timeout=20))

    by_last = {sent(llm, i)[-1]["content"]: sent(llm, i) for i in range(2)}
    assert by_last["앨리스 질문 2"] == [
        {"role": "system", "content": "이름=앨리스 요약=앨리스의 요약"},
        {"role": "user", "content": "앨리스 질문 1"},
        {"role": "assistant", "content": "앨리스 답변 1"},
        {"role": "user", "content": "앨리스 질문 2"},
    ]
    assert by_last["밥 질문 2"] == [
        {"role": "system", "content": "이름=밥 요약=밥의 요약"},
        {"role": "user", "content": "밥 질문 1"},
        {"role": "assistant", "content": "밥 답변 1"},
        {"role": "user", "content": "밥 질문 2"},
    ]


async def test_block_template_and_defaults_for_missing_values(
    db: Database, kb: KnowledgeBase, pipeline: LLMPipeline, llm: respx.Route
) -> None:
    await use_template(db, "배송 블록: {user_name} / {summary} / {context}", name="배송 문의")
    user = await add_user(db, "u-1")
    conv = await add_conversation(db, user)
    task = await claimed_task(db, user, conv, await say(db, conv, user, Role.USER, "택배 언제 와요?"),
                              block_name="배송 문의")
    answer = await pipeline.answer(task, timeout=20)
    assert sent(llm)[0] == {"role": "system", "content": "배송 블록: 고객 / (없음) / (없음)"}
    assert (answer.template_name, answer.template_version, answer.sources) == ("배송 문의", 1, "[]")


async def test_a_name_stated_in_a_message_is_stored_and_used_at_once(
    db: Database, kb: KnowledgeBase, pipeline: LLMPipeline, llm: respx.Route
) -> None:
    await use_template(db)
    user = await add_user(db, "u-1")
    conv = await add_conversation(db, user)
    task = await claimed_task(
        db, user, conv, await say(db, conv, user, Role.USER, "안녕하세요, 제 이름은 김철수입니다. 영업시간 알려주세요")
    )
    await pipeline.answer(task, timeout=20)
    await pipeline.answer(task, timeout=20)  # a retried attempt changes nothing more

    assert sent(llm)[0]["content"].startswith("봇=상담도우미 이름=김철수\n")
    async with db.sessions() as session:
        assert await session.scalar(select(AppUser.name).where(AppUser.id == user)) == "김철수"
        events = (await session.execute(select(EventLog).where(EventLog.user_id == user))).scalars().all()
    assert [(e.event_type, json.loads(e.detail or "")) for e in events] == [
        ("name_set", {"old": None, "new": "김철수", "source": "sentence"})
    ]


async def test_ordinary_sentences_leave_the_name_alone(
    db: Database, kb: KnowledgeBase, pipeline: LLMPipeline, llm: respx.Route
) -> None:
    await use_template(db)
    user = await add_user(db, "u-1", name="영희")
    conv = await add_conversation(db, user)
    task = await claimed_task(db, user, conv, await say(db, conv, user, Role.USER, "저는 학생이에요. 할인 되나요?"))
    await pipeline.answer(task, timeout=20)
    assert "이름=영희" in sent(llm)[0]["content"]
    async with db.sessions() as session:
        assert (await session.execute(select(EventLog))).first() is None


async def test_promptlog_is_stored_with_the_assistant_message(
    db: Database, kb: KnowledgeBase, pipeline: LLMPipeline, llm: respx.Route
) -> None:
    await add_faqs(db, kb)
    user = await add_user(db, "u-1", name="민수")
    conv = await add_conversation(db, user)
    task = await claimed_task(db, user, conv, await say(db, conv, user, Role.USER, "배송비 얼마예요?"))
    answer = await pipeline.answer(task, timeout=20)
    async with db.sessions.begin() as session:
        message_id = await complete(session, task, worker_id="w", answer=answer, now=utcnow())
    async with db.sessions() as session:
        log = await session.get(PromptLog, message_id)
    assert log is not None
    assert (log.task_id, log.template_name, log.template_version) == (task.id, "default", 1)
    assert (log.model, log.input_tokens, log.output_tokens, log.finish_reason) == ("gpt-4o-2024-08-06", 120, 30, "stop")
    assert log.latency_ms is not None and log.latency_ms >= 0
    assert json.loads(log.rendered_prompt) == sent(llm)
    sources = json.loads(log.sources or "")
    assert sources and sources[0]["title"] == "자주 묻는 질문" and sources[0]["score"] > 0


async def test_permanent_llm_failure_is_raised_and_recorded(
    db: Database, kb: KnowledgeBase, pipeline: LLMPipeline
) -> None:
    user = await add_user(db, "u-1")
    conv = await add_conversation(db, user)
    task = await claimed_task(db, user, conv, await say(db, conv, user, Role.USER, "안녕"))
    with respx.mock:
        respx.post(LLM_URL).respond(401, json={"error": {"message": "Incorrect API key", "code": "invalid_api_key"}})
        with pytest.raises(PermanentError):
            await pipeline.answer(task, timeout=20)
        respx.post(LLM_URL).respond(503, json={"error": {"message": "overloaded"}})
        with pytest.raises(RetryableError):
            await pipeline.answer(task, timeout=20)
    async with db.sessions() as session:
        events = (await session.execute(select(EventLog).where(EventLog.event_type == "llm_failed"))).scalars().all()
    assert len(events) == 1
    detail = json.loads(events[0].detail or "")
    assert detail["task_id"] == str(task.id) and "401" in detail["error"]
    assert (events[0].user_id, events[0].bot_id) == (user, BOT)


async def test_offline_mode_answers_from_the_knowledge_base(
    settings: Settings, db: Database, kb: KnowledgeBase
) -> None:
    pipeline = build_pipeline(settings, db, knowledge=kb)
    assert isinstance(pipeline, OfflinePipeline)
    await add_faqs(db, kb)
    user = await add_user(db, "u-1")
    conv = await add_conversation(db, user)
    with respx.mock:  # no HTTP at all
        task = await claimed_task(db, user, conv, await say(db, conv, user, Role.USER, "배송비가 얼마예요?"))
        found = await pipeline.answer(task, timeout=20)
        other_bot = await add_user(db, "u-2", bot_id="bot-without-documents")
        conv2 = await add_conversation(db, other_bot)
        task2 = await claimed_task(db, other_bot, conv2, await say(db, conv2, other_bot, Role.USER, "배송비가 얼마예요?"),
                                   bot_id="bot-without-documents")
        unknown = await pipeline.answer(task2, timeout=20)
    assert found.text.startswith(FAQ_INTRO) and "3,000원" in found.text and "(출처: 자주 묻는 질문)" in found.text
    assert (found.model, found.input_tokens, found.template_name) == (OFFLINE_MODEL, 0, None)
    assert json.loads(found.rendered_prompt or "") == [{"role": "user", "content": "배송비가 얼마예요?"}]
    assert len(json.loads(found.sources or "")) == 1
    assert (unknown.text, unknown.sources) == (NOT_FOUND, "[]")


async def test_an_offline_answer_that_declines_offers_the_nearest_faq_questions_as_kakao_quick_replies(
    settings: Settings, db: Database, kb: KnowledgeBase
) -> None:
    await add_faqs(db, kb)
    user = await add_user(db, "u-1")
    conv = await add_conversation(db, user)
    strict = KnowledgeBase(settings.model_copy(update={"rag_score_threshold": 0.99}))  # nothing is quoted
    pipeline = build_pipeline(settings, db, knowledge=strict)
    with respx.mock:
        task = await claimed_task(db, user, conv, await say(db, conv, user, Role.USER, "택배비 얼마 나와요"))
        declined = await pipeline.answer(task, timeout=20)
    await pipeline.aclose()
    assert not declined.found and declined.text.startswith(NOT_FOUND)
    assert declined.quick_replies[0] == "배송비는 얼마인가요?"
    assert all(f"· {q}" in declined.text for q in declined.quick_replies)

    # What the worker sends to Kakao: each suggestion a quick reply that sends the whole question back ...
    body = text_reply(declined.text, quick_replies=declined.quick_replies).model_dump(by_alias=True, exclude_none=True)
    replies = body["template"]["quickReplies"]
    assert [r["messageText"] for r in replies] == declined.quick_replies
    assert all(len(r["label"]) <= MAX_LABEL_CHARS and r["action"] == "message" for r in replies)
    # ... which the default threshold answers.
    answering = build_pipeline(settings, db, knowledge=kb)
    with respx.mock:
        task = await claimed_task(db, user, conv, await say(db, conv, user, Role.USER, replies[0]["messageText"]))
        answered = await answering.answer(task, timeout=20)
    assert answered.found and "3,000원" in answered.text and answered.quick_replies == []


async def test_offline_mode_still_learns_names(settings: Settings, db: Database, kb: KnowledgeBase) -> None:
    pipeline = build_pipeline(settings, db, knowledge=kb)
    user = await add_user(db, "u-1")
    conv = await add_conversation(db, user)
    task = await claimed_task(db, user, conv, await say(db, conv, user, Role.USER, "my name is Yeonwoo"))
    await pipeline.answer(task, timeout=20)
    async with db.sessions() as session:
        assert await session.scalar(select(AppUser.name).where(AppUser.id == user)) == "Yeonwoo"


async def test_startup_log_names_the_answer_mode(settings: Settings, llm_settings: Settings, db: Database) -> None:
    lines: list[str] = []
    handler = logger.add(lines.append, level="INFO", format="{message}")
    try:
        offline = build_pipeline(settings, db)
        online = build_pipeline(
            llm_settings.model_copy(update={"openai_base_url": "http://user:pw@127.0.0.1:9100/llm/0/v1"}), db
        )
        await offline.aclose()
        await online.aclose()
    finally:
        logger.remove(handler)
    assert any("offline" in line and "knowledge base" in line for line in lines)
    assert any("gpt-4o" in line and "127.0.0.1:9100" in line and "pw" not in line for line in lines)
    assert api_host(None) == "api.openai.com"


async def test_no_time_left_is_retryable(
    db: Database, kb: KnowledgeBase, pipeline: LLMPipeline, llm: respx.Route
) -> None:
    user = await add_user(db, "u-1")
    conv = await add_conversation(db, user)
    task = await claimed_task(db, user, conv, await say(db, conv, user, Role.USER, "안녕"))
    with pytest.raises((RetryableError, TimeoutError)):
        await pipeline.answer(task, timeout=0.000001)
    assert not llm.called


def test_completion_fixture_is_valid_for_the_sdk() -> None:
    from openai.types.chat import ChatCompletion

    ChatCompletion.model_validate(completion("x"))
    assert httpx.URL(LLM_URL).host == "llm.test"
