"""The API refuses to start on a database whose schema is not at this code's head revision."""

from loguru import logger
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.schema import SchemaNotReady, check_at_head


class SchemaGate:
    """ASGI middleware: lifespan startup fails with one log line when the schema is not at head.

    Raising in the app's lifespan would stop uvicorn too, but uvicorn then logs a traceback after the line.
    """

    def __init__(self, app: ASGIApp, engine: AsyncEngine) -> None:
        self.app = app
        self.engine = engine

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return
        startup = await receive()
        try:
            await check_at_head(self.engine)
        except SchemaNotReady as exc:
            logger.error(str(exc))
            await self.engine.dispose()
            # uvicorn answers with "Application startup failed. Exiting." and exit code 3.
            await send({"type": "lifespan.startup.failed", "message": ""})
            return
        await self.app(scope, _replay(startup, receive), send)


def _replay(first: Message, receive: Receive) -> Receive:
    """`receive` that gives `first` once more before the server's next messages."""
    pending = [first]

    async def replayed() -> Message:
        return pending.pop() if pending else await receive()

    return replayed
