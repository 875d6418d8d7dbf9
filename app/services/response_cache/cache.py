"""The response cache: in-process LRU in front of the database table, with its metrics."""

from collections.abc import Callable
from datetime import datetime, timedelta

from loguru import logger

from app import metrics
from app.config import Settings
from app.db import Database, pg_dsn
from app.models import utcnow
from app.pg_listener import PgListener
from app.queue import autocommit
from app.services.llm import LLMResult
from app.services.response_cache import store
from app.services.response_cache.keys import CacheKey
from app.services.response_cache.lru import LRU
from app.services.response_cache.store import CachedAnswer

# A purge on PostgreSQL NOTIFYs this channel; every process holding entries in memory drops them.
PURGE_CHANNEL = "responsecache_purge"
LISTEN_APPLICATION_NAME = "skill-cache-listen"
# Only complete answers are worth repeating; a cut-off one ("length") is asked again.
_CACHEABLE_FINISH = {None, "stop"}


class ResponseCache:
    """Answers by key for `ttl_seconds`; lookups and writes never fail an answer (a broken cache is a miss)."""

    def __init__(
        self,
        db: Database,
        *,
        ttl_seconds: int,
        max_entries: int,
        clock: Callable[[], datetime] = utcnow,
        listen_dsn: str | None = None,
    ) -> None:
        self._db = db
        self._ttl = timedelta(seconds=ttl_seconds)
        self._lru: LRU[CachedAnswer] = LRU(max_entries)
        self._clock = clock
        # On PostgreSQL other processes may purge: memory is trusted only while their NOTIFYs can reach us.
        self._listener = (
            PgListener(listen_dsn, PURGE_CHANNEL, self.forget_local, application_name=LISTEN_APPLICATION_NAME)
            if listen_dsn
            else None
        )
        self._listening = False
        # Bumped by every purge, so a row read before a purge is not put back in memory after it.
        self._generation = 0

    @classmethod
    def from_settings(cls, settings: Settings, db: Database, *, api_process: bool = True) -> "ResponseCache | None":
        """The cache the settings ask for; None when `RESPONSE_CACHE_TTL_SECONDS` is 0.

        On SQLite a purge reaches only the memory of the API's process (no NOTIFY), so a separate worker
        process (`api_process=False`) keeps none.
        """
        if settings.response_cache_ttl_seconds == 0:
            return None
        return cls(
            db,
            ttl_seconds=settings.response_cache_ttl_seconds,
            max_entries=settings.response_cache_max_entries if db.is_postgres or api_process else 0,
            listen_dsn=pg_dsn(settings.database_url) if db.is_postgres else None,
        )

    async def get(self, key: CacheKey) -> CachedAnswer | None:
        """The live answer of the key, counted as a hit or a miss."""
        found = await self._lookup(key)
        (metrics.CACHE_HITS if found is not None else metrics.CACHE_MISSES).inc()
        return found

    async def _lookup(self, key: CacheKey) -> CachedAnswer | None:
        now = self._clock()
        if self._memory_trusted():
            entry = self._lru.get(key.digest)
            if entry is not None and entry.bot_id == key.bot_id and entry.expires_at > now:
                return entry
            self._lru.pop(key.digest)
        generation = self._generation
        try:
            async with autocommit(self._db.engine) as conn:  # one statement: no BEGIN and ROLLBACK
                entry = await store.find(conn, digest=key.digest, bot_id=key.bot_id, now=now)
        except Exception as exc:  # noqa: BLE001 - the model can still answer
            logger.warning("Response cache lookup failed, asking the model: {}: {}", type(exc).__name__, exc)
            return None
        if entry is not None:
            self._remember(key, entry, generation)
        return entry

    async def put(self, key: CacheKey, result: LLMResult) -> None:
        """Keep a model's complete answer for the TTL."""
        if result.finish_reason not in _CACHEABLE_FINISH:
            return
        now = self._clock()
        entry = CachedAnswer(key.bot_id, result.model, result.text, result.finish_reason, now + self._ttl)
        generation = self._generation
        try:
            async with autocommit(self._db.engine) as conn:
                await store.save(conn, digest=key.digest, answer=entry, now=now)
        except Exception as exc:  # noqa: BLE001 - the answer itself is fine
            logger.warning("Response cache write failed: {}: {}", type(exc).__name__, exc)
            return
        self._remember(key, entry, generation)

    @property
    def listening(self) -> bool:
        """Whether purges of other processes reach this one now (always, without PostgreSQL)."""
        return self._listener is None or self._listener.connected

    def __len__(self) -> int:
        """Entries held in memory."""
        return len(self._lru)

    def forget_local(self) -> None:
        """Drop the in-process entries (after a purge anywhere)."""
        self._generation += 1
        self._lru.clear()

    def _remember(self, key: CacheKey, entry: CachedAnswer, generation: int) -> None:
        if generation == self._generation and self._memory_trusted():
            self._lru.put(key.digest, entry)

    def _memory_trusted(self) -> bool:
        if self._listener is None:
            return True  # one process (embedded SQLite): purges clear this memory directly
        if not self._listening:
            self._listening = True
            self._listener.start()
        # Connecting clears the memory (the listener's catch-up call), so nothing from before a missed purge is kept.
        return self.listening

    async def aclose(self) -> None:
        if self._listener is not None:
            await self._listener.stop()


async def purge(db: Database, *, bot_id: str | None = None, local: ResponseCache | None = None) -> int:
    """Delete the cached answers (all, or one bot's) and this process's memory of them; returns the rows deleted.

    Other processes drop their memory on the NOTIFY (PostgreSQL); on SQLite the API and the worker share `local`.
    """
    async with db.engine.begin() as conn:
        deleted = await store.purge(conn, bot_id=bot_id, notify_channel=PURGE_CHANNEL if db.is_postgres else None)
    if local is not None:
        local.forget_local()
    return deleted
