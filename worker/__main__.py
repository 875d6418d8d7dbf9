"""`python -m worker`: a standalone worker process (any number of them, on any machine)."""

import asyncio
import signal

from loguru import logger
from prometheus_client import start_http_server

from app.config import get_settings
from app.logs import DatabaseLogSink, setup_logging
from app.schema import SchemaNotReady, check_at_head
from app.services.pipeline import build_pipeline
from worker.runtime import Worker, worker_database


async def main() -> None:
    settings = get_settings()
    setup_logging(settings)
    db = worker_database(settings)
    try:
        await check_at_head(db.engine)  # a worker never migrates; on an outdated schema every task would fail
    except SchemaNotReady as exc:
        logger.error(str(exc))
        await db.dispose()
        raise SystemExit(3) from None  # uvicorn's code for a failed start-up
    if settings.worker_metrics_port:
        start_http_server(settings.worker_metrics_port, addr=settings.host)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    db_logs = DatabaseLogSink(db.sessions, secrets=settings.secrets()).start()
    pipeline = build_pipeline(settings, db, api_process=False)
    worker = Worker(settings, db, pipeline)
    try:
        async with worker:
            await stop.wait()
    finally:
        await pipeline.aclose()
        await db_logs.stop()
        await db.dispose()
    logger.info("Worker exited")


if __name__ == "__main__":
    asyncio.run(main())
