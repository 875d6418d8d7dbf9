"""Embedded default: the API and (with EMBEDDED_WORKER) a worker in one process and one event loop.

It brings the database to the current schema itself, so a new SQLite file or PostgreSQL database just works."""

import asyncio
import signal

import uvicorn

from app.config import get_settings
from app.logs import LOGGING_INI, setup_logging
from app.main import create_app
from app.schema import upgrade_to_head
from app.services.knowledge import KnowledgeBase
from app.services.pipeline import build_pipeline
from worker.runtime import Worker, worker_database


async def main() -> None:
    settings = get_settings()
    setup_logging(settings)
    await upgrade_to_head(settings)
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_config=str(LOGGING_INI),
        access_log=False,
    )
    server = uvicorn.Server(config)
    if not settings.embedded_worker:
        await server.serve()
        return
    # uvicorn handles SIGINT/SIGTERM while it serves, then re-raises the signal to the handler it
    # found; an ignoring handler lets the worker drain gracefully instead of the process dying.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: None)
    # One knowledge base and one answer pipeline (one OpenAI client) for the API and the worker.
    knowledge = app.state.knowledge = KnowledgeBase(settings)
    db = worker_database(settings)
    pipeline = app.state.pipeline = build_pipeline(settings, db, knowledge=knowledge)
    worker = Worker(settings, db, pipeline, wakeup=app.state.wakeup)
    await worker.start()
    try:
        await server.serve()
    finally:
        await worker.stop()
        await pipeline.aclose()
        await db.dispose()
        await app.state.db.dispose()


if __name__ == "__main__":
    asyncio.run(main())
