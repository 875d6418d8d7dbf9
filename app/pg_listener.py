"""PostgreSQL LISTEN on a dedicated connection that comes back after a database restart."""

import asyncio
import random
from collections.abc import Callable

import asyncpg
from loguru import logger

APPLICATION_NAME = "skill-worker-listen"
_FIRST_RETRY_SECONDS = 0.5
_MAX_RETRY_SECONDS = 10.0


class PgListener:
    """Calls `on_notify` for every NOTIFY on `channel`, and once after each (re)connect to catch up."""

    def __init__(
        self,
        dsn: str,
        channel: str,
        on_notify: Callable[[], None],
        *,
        check_seconds: float = 5.0,
        application_name: str = APPLICATION_NAME,
    ) -> None:
        self._dsn = dsn
        self._application_name = application_name
        self._channel = channel
        self._on_notify = on_notify
        self._check_seconds = check_seconds
        self._task: asyncio.Task[None] | None = None
        self.connected = False
        self.connects = 0  # successful (re)connects so far

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"pg-listener-{self._channel}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _run(self) -> None:
        delay = _FIRST_RETRY_SECONDS
        while True:
            try:
                conn = await asyncpg.connect(
                    self._dsn, timeout=5, server_settings={"application_name": self._application_name}
                )
            except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
                logger.warning("LISTEN connection failed ({}), retrying in {:.1f}s", type(exc).__name__, delay)
                await asyncio.sleep(delay * (0.5 + random.random() / 2))
                delay = min(delay * 2, _MAX_RETRY_SECONDS)
                continue
            delay = _FIRST_RETRY_SECONDS
            try:
                await self._listen(conn)
            finally:
                self.connected = False
                conn.terminate()
            logger.warning("LISTEN connection lost, reconnecting")

    async def _listen(self, conn: asyncpg.Connection) -> None:
        """Hold the connection until it drops; a periodic ping catches silent network failures."""
        lost = asyncio.Event()
        conn.add_termination_listener(lambda _conn: lost.set())
        try:
            await conn.add_listener(self._channel, lambda *_args: self._on_notify())
        except (OSError, asyncpg.PostgresError):
            return
        self.connected = True
        self.connects += 1
        logger.info("Listening on channel {}", self._channel)
        self._on_notify()  # catch up with what was notified while we were away
        while not lost.is_set():
            try:
                await asyncio.wait_for(lost.wait(), self._check_seconds)
            except TimeoutError:
                try:
                    await conn.execute("SELECT 1", timeout=self._check_seconds)
                except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError):
                    return
