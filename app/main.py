"""FastAPI application factory; `uvicorn app.main:app` serves the API alone."""

from collections import OrderedDict
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from loguru import logger
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException

from app import console
from app.api import admin_cache, admin_tasks, api_keys, audio, chat, dev, health, knowledge, metrics, prompts, skill, usage, user
from app.api.errors import VALIDATION_CODE, app_error, http_error, invalid_value, validation_error
from app.config import Settings, get_settings
from app.db import Database
from app.errors import AppError
from app.logs import DatabaseLogSink, setup_logging
from app.queue import Wakeup
from app.schema_gate import SchemaGate
from app.services.skill import SkillService


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app with its own database handle (tests build one per database)."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        logger.info(
            "API starting: database={} ai={}",
            app.state.db.engine.dialect.name,
            "openai" if settings.openai_api_key else "offline",
        )
        db_logs = DatabaseLogSink(app.state.db.sessions, secrets=settings.secrets()).start()
        yield
        await app.state.closing.aclose()
        await db_logs.stop()
        await app.state.db.dispose()

    app = FastAPI(
        title="Kakao AI Skill Server",
        version="0.1.0",
        description="KakaoTalk channel AI chatbot skill server with a durable answer queue.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    # What the app builds on first use (the pipeline of an API-only process) is closed at shutdown.
    app.state.closing = AsyncExitStack()
    app.state.db = Database(settings)
    app.state.wakeup = Wakeup()
    app.state.skill = SkillService(settings, app.state.db, app.state.wakeup)
    # The API never migrates (run_server.py does before it starts): on a schema behind head, serving would
    # answer every message with an apology, so it refuses to start.
    app.add_middleware(SchemaGate, engine=app.state.db.engine)
    # Every error body (but the chat API's) is {"detail", "code"}: ours, FastAPI's validation errors, Starlette's 404/405, the database's.
    app.add_exception_handler(AppError, app_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(DBAPIError, invalid_value)
    app.include_router(health.router)
    app.include_router(skill.router)
    app.include_router(prompts.router)
    app.include_router(admin_tasks.router)
    app.include_router(admin_cache.router)
    app.include_router(user.router)
    app.include_router(metrics.router)
    app.include_router(knowledge.router)
    app.include_router(usage.router)
    app.include_router(api_keys.router)
    # The chat API answers errors in OpenAI's shape (app/api/openai_errors.py), not {detail, code}.
    app.include_router(chat.router)
    app.include_router(audio.router)
    console.install(app)
    if settings.debug:
        app.state.test_callbacks = OrderedDict()
        app.include_router(dev.router)
    _complete_openapi(app)
    return app


def _complete_openapi(app: FastAPI) -> None:
    """Add what FastAPI cannot see: the models of the bodies read by hand, and the code of its validation errors."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            components.update(skill.PAYLOAD_SCHEMA_DEFS)
            components.update(knowledge.UPLOAD_SCHEMA_DEFS)
            if validation := components.get("HTTPValidationError"):
                validation["properties"]["code"] = {"type": "string", "const": VALIDATION_CODE}
                validation["required"] = ["detail", "code"]
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def __getattr__(name: str) -> FastAPI:
    # Built on first access so importing create_app (tests, run_server.py) reads no environment.
    if name != "app":
        raise AttributeError(name)
    settings = get_settings()
    setup_logging(settings)
    application = create_app(settings)
    globals()["app"] = application
    return application
