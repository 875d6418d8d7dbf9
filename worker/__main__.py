"""`python -m worker`: a standalone worker process."""

import asyncio
import signal

from loguru import logger
from sqlalchemy import text

from app.config import get_settings
from app.db import Database
from app.logs import setup_logging


async def main() -> None:
    settings = get_settings()
    setup_logging(settings)
    db = Database(settings)
    async with db.engine.connect() as conn:
        await conn.execute(text("SELECT 1"))
    logger.info("Worker connected to {}", db.engine.dialect.name)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    logger.info("Worker stopping")
    await db.dispose()


if __name__ == "__main__":
    asyncio.run(main())
