"""Embedded default: the API and (with EMBEDDED_WORKER) a worker in one process."""

import asyncio

import uvicorn

from app.config import get_settings
from app.logs import LOGGING_INI, setup_logging
from app.main import create_app


async def main() -> None:
    settings = get_settings()
    setup_logging(settings)
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_config=str(LOGGING_INI),
        access_log=False,
    )
    await uvicorn.Server(config).serve()


if __name__ == "__main__":
    asyncio.run(main())
