"""The one answer path: memory and knowledge into the active template, then the LLM.

A claimed task (the worker) and a free question (`POST /api/knowledge/query`) go through the same steps.
Without `OPENAI_API_KEY` the offline pipeline answers from the knowledge base alone, saying so.
"""

import asyncio
import json
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Protocol, TypeVar
from urllib.parse import urlsplit

from loguru import logger
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.config import Settings
from app.db import Database
from app.models import PromptTemplate, utcnow
from app.queue import ClaimedTask, StoredAnswer
from app.services import events, memory, prompts, usage
from app.services.errors import AnswerError, PermanentError
from app.services.knowledge import KnowledgeBase, Passage, format_context, sources_json
from app.services.knowledge.documents import has_documents
from app.services.knowledge.offline import compose
from app.services.knowledge.schemas import OfflineAnswer
from app.services.llm import ChatMessage, LLMClient, LLMResult
from app.services.names import extract_name, mentions_name
from app.services.response_cache import CacheKey, ModelParameters, ResponseCache, cache_key, normalise_utterance
from app.services.users import ANONYMOUS, set_name

T = TypeVar("T")

# Recorded as the model of offline answers in `promptlog`.
OFFLINE_MODEL = "offline-knowledge-base"
_MAX_EVENT_ERROR = 300


class Answer(StoredAnswer):
    """A finished answer: what is stored, plus how it is shown in Kakao and the passages it drew on."""

    quick_replies: list[str] = []
    passages: list[Passage] = []
    found: bool = True


@dataclass(frozen=True, slots=True)
class Question:
    """What an answer is built for: the bot, the block, and the remembered turn (task id for the logs)."""

    bot_id: str
    block_name: str | None
    turn: memory.Turn
    task_id: uuid.UUID | None = None
    template: PromptTemplate | None = None  # read with the turn for a task; None = resolve when answering


class AnswerPipeline(Protocol):
    """Builds answers; raises `RetryableError` or `PermanentError` on failure."""

    llm: LLMClient | None
    cache: ResponseCache | None

    async def answer(self, task: ClaimedTask, *, timeout: float) -> Answer: ...

    async def answer_question(self, question: Question, *, timeout: float) -> Answer: ...

    async def aclose(self) -> None: ...


class Context:
    """What every answer starts from: the remembered turn (with a stated name learned) and the passages."""

    def __init__(
        self, settings: Settings, sessions: async_sessionmaker[AsyncSession], knowledge: KnowledgeBase
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self.knowledge = knowledge

    async def _learn_name(self, task: ClaimedTask, turn: memory.Turn) -> memory.Turn:
        """Store a name the user states in an ordinary message ("내 이름은 민수야") before answering it."""
        if not mentions_name(turn.utterance):
            return turn
        name = await asyncio.to_thread(extract_name, turn.utterance)  # may load the analyser
        if name is None or name == turn.user.name:
            return turn
        async with self.sessions.begin() as session:
            await set_name(session, turn.user, bot_id=task.bot_id, name=name, now=utcnow(), source="sentence")
        logger.info("Task {}: the user stated their name; stored for user {}", task.id, turn.user.id)
        return turn.with_name(name)

    async def question(self, task: ClaimedTask, *, with_template: bool = False) -> Question:
        """The task's question, read in one session (one connection checkout per answer)."""
        template = None
        async with self.sessions() as session:
            turn = await memory.load_turn(session, task)
            if with_template:
                template = await prompts.resolve_template(session, bot_id=task.bot_id, block_name=task.block_name)
        return Question(
            bot_id=task.bot_id,
            block_name=task.block_name,
            turn=await self._learn_name(task, turn),
            task_id=task.id,
            template=template,
        )

    async def passages(self, question: Question) -> list[Passage]:
        """The best matching passages, each flagged `confident` or not; none for a bot without documents."""
        return await self._from_knowledge(question, self.knowledge.retrieve, [])

    async def offline_answer(self, question: Question) -> OfflineAnswer:
        """The knowledge base's own answer without an LLM, or its honest "I don't know"."""
        return await self._from_knowledge(question, self.knowledge.offline_answer, compose([]))

    async def _from_knowledge(
        self, question: Question, read: Callable[[str, str], Awaitable[T]], fallback: T
    ) -> T:
        """`read(bot_id, utterance)`, skipped (nothing loaded) for a bot without documents."""
        documents = question.turn.has_documents
        if documents is None:
            async with self.sessions() as session:
                documents = await has_documents(session, question.bot_id)
        if not documents:
            return fallback
        try:
            return await read(question.bot_id, question.turn.utterance)
        except AnswerError:
            raise  # an embedding API failure follows the task's retry policy
        except Exception as exc:  # noqa: BLE001 - a broken index must not stop answers
            logger.warning("Task {}: knowledge retrieval failed, answering without it: {}: {}",
                           question.task_id, type(exc).__name__, exc)
            return fallback


def free_question(bot_id: str, utterance: str) -> Question:
    """A question asked outside any conversation: no user, no history, no summary."""
    return Question(
        bot_id=bot_id, block_name=None, turn=memory.Turn(user=ANONYMOUS, utterance=utterance, history=[], summary=None)
    )


class BasePipeline(ABC):
    """A task's answer is its question's answer: the turn is loaded, then `answer_question` builds it."""

    llm: LLMClient | None = None
    cache: ResponseCache | None = None
    uses_template = False

    def __init__(self, context: Context) -> None:
        self.context = context

    async def answer(self, task: ClaimedTask, *, timeout: float) -> Answer:
        started = time.monotonic()
        async with asyncio.timeout(timeout):
            question = await self.context.question(task, with_template=self.uses_template)
        return await self.answer_question(question, timeout=timeout - (time.monotonic() - started))

    @abstractmethod
    async def answer_question(self, question: Question, *, timeout: float) -> Answer: ...

    async def aclose(self) -> None:
        await self.context.knowledge.aclose()


class LLMPipeline(BasePipeline):
    """System prompt (template + name + summary + passages), the conversation so far, the utterance.

    With a response cache, a request whose key (everything the model would see) was answered before is served
    from it without a model call.
    """

    uses_template = True

    def __init__(self, context: Context, llm: LLMClient, cache: ResponseCache | None = None) -> None:
        super().__init__(context)
        self.llm = llm
        self.cache = cache
        self.parameters = ModelParameters(
            model=llm.model, temperature=llm.temperature, max_tokens=llm.max_tokens,
            base_url=context.settings.openai_base_url,
        )

    async def answer_question(self, question: Question, *, timeout: float) -> Answer:
        started = time.monotonic()
        # One spelling of the question for retrieval, the prompt and the cache key alike.
        turn = replace(question.turn, utterance=normalise_utterance(question.turn.utterance))
        question = replace(question, turn=turn)
        async with asyncio.timeout(timeout):
            passages = await self.context.passages(question)
            template = question.template or await self._template(question)
            messages = self.messages(question.turn, template.system_prompt, passages)
            key = cache_key(question.bot_id, self.parameters, messages) if self.cache is not None else None
            result = await self._cached(key, started)
            cache_hit = result is not None
            if result is None:
                try:
                    result = await self.llm.complete(messages, timeout=timeout - (time.monotonic() - started))
                except PermanentError as exc:
                    await self._record_failure(question, exc)
                    raise
                if self.cache is not None and key is not None:
                    await self.cache.put(key, result)
        return Answer(
            text=result.text,
            input_tokens=result.input_tokens,
            output_tokens=result.output_tokens,
            model=result.model,
            latency_ms=result.latency_ms,
            finish_reason=result.finish_reason,
            template_name=template.name,
            template_version=template.version,
            rendered_prompt=json.dumps([m.model_dump() for m in messages], ensure_ascii=False),
            sources=sources_json(passages),
            cache_key=key.digest if key else None,
            cache_hit=cache_hit,
            passages=passages,
            found=any(p.confident for p in passages),
        )

    async def _template(self, question: Question) -> PromptTemplate:
        async with self.context.sessions() as session:
            return await prompts.resolve_template(session, bot_id=question.bot_id, block_name=question.block_name)

    async def _cached(self, key: CacheKey | None, started: float) -> LLMResult | None:
        """The cached answer of the key as a model result costing 0 tokens, or None.

        A hit is noted to the usage collector like a model call, of 0 tokens and marked `cache_hit`.
        """
        if self.cache is None or key is None:
            return None
        hit = await self.cache.get(key)
        if hit is None:
            return None
        latency_ms = round((time.monotonic() - started) * 1000)
        usage.note(usage.ModelCall(usage.Kind.ANSWER, hit.model, 0, 0, latency_ms, cache_hit=True))
        return LLMResult(
            text=hit.text, input_tokens=0, output_tokens=0, model=hit.model, latency_ms=latency_ms,
            finish_reason=hit.finish_reason,
        )

    def messages(self, turn: memory.Turn, system_prompt: str, passages: list[Passage]) -> list[ChatMessage]:
        settings = self.context.settings
        variables = prompts.PromptVariables(
            user_name=turn.user.name,
            summary=turn.summary,
            context=format_context(passages),
            utterance=turn.utterance,
            **({"bot_name": settings.bot_name} if settings.bot_name else {}),
        )
        try:
            system = prompts.render_template(system_prompt, variables)
        except prompts.TemplateError as exc:
            raise PermanentError(f"the active prompt template cannot be rendered: {exc}") from exc
        return [
            ChatMessage(role="system", content=system),
            *memory.trim_history(turn.history, settings.history_token_budget),
            ChatMessage(role="user", content=turn.utterance),
        ]

    async def _record_failure(self, question: Question, exc: PermanentError) -> None:
        if question.task_id is None:
            return  # a free question's caller gets the error itself
        try:
            async with self.context.sessions.begin() as session:
                await events.record_event(
                    session,
                    events.LLM_FAILED,
                    user_id=question.turn.user.id,
                    bot_id=question.bot_id,
                    detail={"task_id": str(question.task_id), "error": str(exc)[:_MAX_EVENT_ERROR]},
                )
        except Exception as db_exc:  # noqa: BLE001 - the task's own failure is what matters
            logger.warning("Task {}: could not record the LLM failure: {}", question.task_id, type(db_exc).__name__)

    async def aclose(self) -> None:
        await self.llm.aclose()
        if self.cache is not None:
            await self.cache.aclose()
        await super().aclose()


class OfflinePipeline(BasePipeline):
    """No LLM: the best knowledge-base passage, said to come from the knowledge base, or an honest "모르겠어요"."""

    async def answer_question(self, question: Question, *, timeout: float) -> Answer:
        async with asyncio.timeout(timeout):
            result = await self.context.offline_answer(question)
        utterance = question.turn.utterance
        return Answer(
            text=result.text,
            model=OFFLINE_MODEL,
            rendered_prompt=json.dumps([{"role": "user", "content": utterance}], ensure_ascii=False),
            sources=sources_json(result.sources),
            passages=result.sources,
            found=result.found,
        )


def build_pipeline(
    settings: Settings, db: Database, *, knowledge: KnowledgeBase | None = None, api_process: bool = True
) -> LLMPipeline | OfflinePipeline:
    """The pipeline a process runs (`api_process=False` for a standalone worker); logs which answer mode is on."""
    context = Context(settings, db.sessions, knowledge or KnowledgeBase(settings))
    if not settings.openai_api_key:
        logger.info("Answer mode: offline, from the knowledge base alone (OPENAI_API_KEY is not set)")
        return OfflinePipeline(context)
    logger.info("Answer mode: OpenAI model {} at {}", settings.openai_model, api_host(settings.openai_base_url))
    cache = ResponseCache.from_settings(settings, db, api_process=api_process)
    return LLMPipeline(context, LLMClient(settings), cache)


def api_host(base_url: str | None) -> str:
    """The host (and port) of the API base URL, without any credentials or path."""
    if not base_url:
        return "api.openai.com"
    parts = urlsplit(base_url)
    host = parts.hostname or base_url
    return f"{host}:{parts.port}" if parts.port else host
