"""The one answer path: memory and knowledge into the active template, then the LLM.

A claimed task (the worker), a free question (`POST /api/knowledge/query`) and the chat API (its client's
messages as the history, answers whole or streamed) go through the same steps.
Without `OPENAI_API_KEY` the offline pipeline answers from the knowledge base alone, saying so.
"""

import asyncio
import contextlib
import json
import re
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable
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
from app.services.llm import ChatMessage, LLMClient, LLMResult, LLMStream
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
    """What an answer is built for: the bot, the block, and the remembered turn (task id for the logs).

    `temperature` and `max_tokens` are a caller's own (the chat API's client); None keeps the server's settings.
    """

    bot_id: str
    block_name: str | None
    turn: memory.Turn
    task_id: uuid.UUID | None = None
    template: PromptTemplate | None = None  # read with the turn for a task; None = resolve when answering
    temperature: float | None = None
    max_tokens: int | None = None


class AnswerStream(ABC):
    """An answer arriving in pieces: iterate `pieces()`, then `answer()`.

    `answer()` of a stream cut off early (its client left) is what was written so far, so it can still be
    stored and counted.
    """

    @abstractmethod
    def pieces(self) -> AsyncIterator[str]: ...

    @abstractmethod
    def answer(self) -> Answer: ...


class AnswerPipeline(Protocol):
    """Builds answers; raises `RetryableError` or `PermanentError` on failure."""

    llm: LLMClient | None
    cache: ResponseCache | None

    async def answer(self, task: ClaimedTask, *, timeout: float) -> Answer: ...

    async def answer_question(self, question: Question, *, timeout: float) -> Answer: ...

    async def open_stream(self, question: Question, *, timeout: float) -> AnswerStream: ...

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


def _normalised(question: Question) -> Question:
    """One spelling of the question for retrieval, the prompt and the cache key alike."""
    return replace(question, turn=replace(question.turn, utterance=normalise_utterance(question.turn.utterance)))


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

    @abstractmethod
    async def open_stream(self, question: Question, *, timeout: float) -> AnswerStream:
        """Start the answer as a stream; errors before its first piece (an upstream refusal) are raised here."""

    async def aclose(self) -> None:
        await self.context.knowledge.aclose()


@dataclass(frozen=True, slots=True)
class _Prompt:
    """The messages sent to the model and what the prompt log says about them."""

    messages: list[ChatMessage]
    template_name: str
    template_version: int
    passages: list[Passage]

    def answer(self, result: LLMResult, *, key: CacheKey | None = None, cache_hit: bool = False) -> Answer:
        return Answer(
            text=result.text,
            input_tokens=result.input_tokens,
            output_tokens=result.output_tokens,
            model=result.model,
            latency_ms=result.latency_ms,
            finish_reason=result.finish_reason,
            template_name=self.template_name,
            template_version=self.template_version,
            rendered_prompt=json.dumps([m.model_dump() for m in self.messages], ensure_ascii=False),
            sources=sources_json(self.passages),
            cache_key=key.digest if key else None,
            cache_hit=cache_hit,
            passages=self.passages,
            found=any(p.confident for p in self.passages),
        )


class _ModelStream(AnswerStream):
    """The model's stream; read to its end, its answer goes into the response cache like a whole one."""

    def __init__(
        self, stream: LLMStream, prompt: _Prompt, *, key: CacheKey | None, cache: ResponseCache | None
    ) -> None:
        self._stream = stream
        self._prompt = prompt
        self._key = key
        self._cache = cache

    async def pieces(self) -> AsyncIterator[str]:
        async for piece in self._stream.pieces():
            yield piece
        if self._cache is not None and self._key is not None:
            await self._cache.put(self._key, self._stream.result())

    def answer(self) -> Answer:
        return self._prompt.answer(self._stream.result(), key=self._key)


# A word with the spaces before it: how a known answer is handed out piece by piece, like a model's stream.
_WORDS = re.compile(r"\s*\S+")


class _WholeAnswerStream(AnswerStream):
    """An answer known in full (offline, or from the response cache), given out word by word."""

    def __init__(self, answer: Answer) -> None:
        self._answer = answer
        self._sent: list[str] = []

    async def pieces(self) -> AsyncIterator[str]:
        for word in _WORDS.findall(self._answer.text):
            self._sent.append(word)
            yield word

    def answer(self) -> Answer:
        return self._answer.model_copy(update={"text": "".join(self._sent)})


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
        question = _normalised(question)
        async with asyncio.timeout(timeout):
            prompt, key, result = await self._prepare(question, started)
            if result is not None:
                return prompt.answer(result, key=key, cache_hit=True)
            async with self._failure_recorded(question):
                result = await self.llm.complete(
                    prompt.messages,
                    timeout=timeout - (time.monotonic() - started),
                    temperature=question.temperature,
                    max_tokens=question.max_tokens,
                )
            if self.cache is not None and key is not None:
                await self.cache.put(key, result)
        return prompt.answer(result, key=key)

    async def open_stream(self, question: Question, *, timeout: float) -> AnswerStream:
        """A cached answer is handed out word by word; a streamed answer read to its end is cached."""
        started = time.monotonic()
        question = _normalised(question)
        async with asyncio.timeout(timeout):
            prompt, key, hit = await self._prepare(question, started)
            if hit is not None:
                return _WholeAnswerStream(prompt.answer(hit, key=key, cache_hit=True))
            async with self._failure_recorded(question):
                stream = await self.llm.open_stream(
                    prompt.messages,
                    timeout=timeout - (time.monotonic() - started),
                    temperature=question.temperature,
                    max_tokens=question.max_tokens,
                )
        return _ModelStream(stream, prompt, key=key, cache=self.cache)

    async def _prepare(self, question: Question, started: float) -> tuple[_Prompt, CacheKey | None, LLMResult | None]:
        """The prompt, its cache key and the cached answer to it, if any."""
        prompt = await self._prompt(question)
        key = self._cache_key(question, prompt.messages)
        return prompt, key, await self._cached(key, started)

    async def _prompt(self, question: Question) -> _Prompt:
        passages = await self.context.passages(question)
        template = question.template or await self._template(question)
        return _Prompt(
            messages=self.messages(question.turn, template.system_prompt, passages),
            template_name=template.name,
            template_version=template.version,
            passages=passages,
        )

    async def _template(self, question: Question) -> PromptTemplate:
        async with self.context.sessions() as session:
            return await prompts.resolve_template(session, bot_id=question.bot_id, block_name=question.block_name)

    def _cache_key(self, question: Question, messages: list[ChatMessage]) -> CacheKey | None:
        """The key of what the model would see, the caller's own temperature and answer length included."""
        if self.cache is None:
            return None
        parameters = self.parameters
        if question.temperature is not None or question.max_tokens is not None:
            parameters = replace(
                parameters,
                temperature=parameters.temperature if question.temperature is None else question.temperature,
                max_tokens=question.max_tokens or parameters.max_tokens,
            )
        return cache_key(question.bot_id, parameters, messages)

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

    @contextlib.asynccontextmanager
    async def _failure_recorded(self, question: Question) -> AsyncIterator[None]:
        """A model call that fails for good is recorded as an event before the error goes on."""
        try:
            yield
        except PermanentError as exc:
            await self._record_failure(question, exc)
            raise

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
            quick_replies=result.suggestions,
        )

    async def open_stream(self, question: Question, *, timeout: float) -> AnswerStream:
        return _WholeAnswerStream(await self.answer_question(question, timeout=timeout))


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
