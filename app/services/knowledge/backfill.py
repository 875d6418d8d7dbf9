"""e5 vectors made in the background: an upload returns once its chunks are stored, and a bot whose chunks lack
vectors (uploaded before the rerank was on, or left half-done by a stopped process) gets them without a re-upload.

Until every chunk of a bot has its vector, the bot is ranked by the hybrid score. Processes sharing a Chroma
server take turns through a lease in the collection's metadata, so one of them does the work.
"""

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from loguru import logger

from app.services.knowledge.semantic import MODEL_KEY, Encoder, to_metadata
from app.services.knowledge.store import VectorStore

if TYPE_CHECKING:
    from chromadb.api.models.Collection import Collection

# Chunks embedded between two writes to Chroma (a few seconds of e5).
BATCH = 16
# Collection metadata key: until when (epoch seconds) one process is filling the bot's vectors.
LEASE_KEY = "semantic_fill_until"
# Longer than filling `SEMANTIC_MAX_CHUNKS` (500) takes on one core (about 80 s); a stopped filler's lease lapses.
LEASE_SECONDS = 300.0
# A bot found without vectors is looked at again at most this often (a lease may be held elsewhere).
RECHECK_SECONDS = 30.0

CollectionOf = Callable[[str], Awaitable["Collection | None"]]


class SemanticBackfill:
    """At most one filling task per bot in this process; `wait()` lets a caller (the CLI, tests) see them finish."""

    def __init__(
        self,
        store: VectorStore,
        encoder: Callable[[], Encoder],
        max_chunks: int,
        collection_of: CollectionOf,
        changed: Callable[[str], None],
    ) -> None:
        self._store = store
        self._encoder = encoder  # read at each pass: the knowledge base's current encoder
        self._max_chunks = max_chunks
        self._collection_of = collection_of
        self._changed = changed  # this process re-reads the bot at once (others within a second)
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._again: set[str] = set()
        self._looked_at: dict[str, float] = {}

    def ensure(self, bot_id: str) -> None:
        """Fill the bot's missing vectors in the background (again after the running pass, if one runs)."""
        self._looked_at[bot_id] = time.monotonic()
        running = self._tasks.get(bot_id)
        if running is not None and not running.done():
            self._again.add(bot_id)
            return
        self._tasks[bot_id] = asyncio.create_task(self._run(bot_id), name=f"semantic-fill-{bot_id}")

    def noticed(self, bot_id: str) -> None:
        """A search met the bot without vectors: fill them, unless looked at within `RECHECK_SECONDS`."""
        if time.monotonic() - self._looked_at.get(bot_id, float("-inf")) >= RECHECK_SECONDS:
            self.ensure(bot_id)

    async def wait(self) -> None:
        """Until no filling task of this process is left."""
        while pending := [task for task in self._tasks.values() if not task.done()]:
            await asyncio.wait(pending)

    async def aclose(self) -> None:
        """Stop filling; a lease left behind lapses and the next process to meet the bot goes on."""
        for task in self._tasks.values():
            task.cancel()
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)
        self._tasks.clear()

    async def _run(self, bot_id: str) -> None:
        try:
            while True:
                self._again.discard(bot_id)
                await self._fill(bot_id)
                if bot_id not in self._again:
                    return
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - a background task: log, and the next upload or search tries again
            logger.exception("Could not make the e5 vectors of bot {}", bot_id)

    async def _fill(self, bot_id: str) -> None:
        """Make the missing vectors of a bot within the size limit. Nothing is written (no new revision, no
        reload anywhere) unless some are missing and no other process holds the lease."""
        collection = await self._collection_of(bot_id)
        if collection is None or await asyncio.to_thread(collection.count) > self._max_chunks:
            return
        data = await asyncio.to_thread(self._store.read_all, collection)
        encoder = self._encoder()
        missing = [
            (chunk_id, text)
            for chunk_id, text, meta in zip(data["ids"], data["documents"], data["metadatas"], strict=True)
            if meta.get(MODEL_KEY) != encoder.name
        ]
        if not missing or len(data["ids"]) > self._max_chunks:
            return
        if not await asyncio.to_thread(self._take_lease, collection):
            return
        logger.info("Making e5 vectors for {} chunks of bot {}", len(missing), bot_id)
        filled = 0
        try:
            for start in range(0, len(missing), BATCH):
                batch = missing[start : start + BATCH]
                vectors = await encoder.passages([text for _, text in batch])
                filled += await asyncio.to_thread(self._store_vectors, collection, batch, vectors, encoder.name)
        finally:
            await asyncio.to_thread(self._release, collection)
            self._changed(bot_id)
        logger.info("Bot {}: e5 vectors made for {} chunks", bot_id, filled)

    def _take_lease(self, collection: "Collection") -> bool:
        current = self._store.fresh(collection)
        if float((current.metadata or {}).get(LEASE_KEY, 0.0)) > time.time():
            return False
        self._store.touch(current, **{LEASE_KEY: time.time() + LEASE_SECONDS})
        return True

    def _release(self, collection: "Collection") -> None:
        # A new revision: every process reloads the bot, reranked now if every chunk has its vector.
        self._store.touch(self._store.fresh(collection), **{LEASE_KEY: 0.0})

    @staticmethod
    def _store_vectors(collection: "Collection", batch: list[tuple[str, str]], vectors: Any, model: str) -> int:
        """Attach each vector to its chunk if the chunk still holds the text it was made from; how many were."""
        now = collection.get(ids=[chunk_id for chunk_id, _ in batch], include=["documents"])
        current = dict(zip(now["ids"], now["documents"] or [], strict=True))
        ids, metadatas = [], []
        for (chunk_id, text), vector in zip(batch, vectors, strict=True):
            if current.get(chunk_id) == text:
                ids.append(chunk_id)
                metadatas.append(to_metadata(vector, model))
        if ids:
            collection.update(ids=ids, metadatas=metadatas)  # merged into each chunk's metadata
        return len(ids)
