"""Shared typed dependencies of the API routers."""

import hmac
from collections.abc import AsyncIterator
from http import HTTPStatus
from typing import Annotated, Any

import httpx
from fastapi import Depends, Path, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, BeforeValidator, Field
from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.db import Database
from app.errors import ServiceUnavailable, Unauthorized
from app.services.chat import keys
from app.services.chat.errors import InvalidApiKey
from app.services.chat.keys import KeyRef
from app.services.chat.service import ChatService
from app.services.chat.speech import SpeechService
from app.services.knowledge import KnowledgeBase
from app.services.pipeline import AnswerPipeline, build_pipeline
from app.services.response_cache import ResponseCache
from app.services.skill import SkillService
from app.services.usage import UsageService


class ErrorDetail(BaseModel):
    """The body of every error response: a message (the list of invalid fields for a validation error) and a code."""

    detail: str | list[Any] = Field(description="What went wrong, in English; field errors as FastAPI lists them")
    code: str = Field(description="Stable machine code, e.g. unauthorized, not_found, invalid_input (app/errors.py)")


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the error statuses a route returns, so clients (and schema tests) know them."""
    return {code: {"model": ErrorDetail, "description": HTTPStatus(code).phrase} for code in codes}


# Row ids and offsets fit the database's integers: a larger number would overflow the driver (a 500, not a 4xx).
MAX_DB_INT = 2**31 - 1
RowId = Annotated[int, Path(ge=1, le=MAX_DB_INT)]
Offset = Annotated[int, Query(ge=0, le=MAX_DB_INT)]


def json_integer(value: Any) -> Any:
    if isinstance(value, bool | str):
        raise ValueError("Input should be a valid integer")  # noqa: TRY004 - pydantic reports only ValueError
    return value


# An integer in a strict body: 5 or 5.0 (the same JSON integer), never true or "5".
JsonInt = Annotated[int, Field(strict=False), BeforeValidator(json_integer)]

# A body FastAPI cannot parse is a 400; a missing or wrong token a 401; no ADMIN_TOKEN configured a 503.
ADMIN_ERRORS = error_responses(401, 503)


# Declares the admin routes' bearer auth in the OpenAPI schema; the check itself is require_admin's own.
_ADMIN_BEARER = HTTPBearer(auto_error=False, scheme_name="AdminToken", description="ADMIN_TOKEN")


async def require_admin(
    request: Request, _: Annotated[HTTPAuthorizationCredentials | None, Depends(_ADMIN_BEARER)]
) -> None:
    """Allow the request only with `Authorization: Bearer <ADMIN_TOKEN>`."""
    settings: Settings = request.app.state.settings
    if not settings.admin_token:
        raise ServiceUnavailable("ADMIN_TOKEN is not configured", code="admin_disabled")
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    # Compare bytes: compare_digest rejects non-ASCII str, and a client may send anything.
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        token.strip().encode(), settings.admin_token.encode()
    ):
        raise Unauthorized("admin token missing or invalid", headers={"WWW-Authenticate": "Bearer"})


AdminDep = Annotated[None, Depends(require_admin)]


# Dependencies are async on purpose: FastAPI runs sync ones in a thread pool, a hop per request.
async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    async with request.app.state.db.sessions() as session:
        yield session


async def get_settings(request: Request) -> Settings:
    return request.app.state.settings


async def get_db(request: Request) -> Database:
    return request.app.state.db


async def get_skill_service(request: Request) -> SkillService:
    return request.app.state.skill


async def get_knowledge(request: Request) -> KnowledgeBase:
    """The process's knowledge base, created on first use so routes that never need it load nothing."""
    kb = getattr(request.app.state, "knowledge", None)
    if kb is None:
        kb = request.app.state.knowledge = KnowledgeBase(request.app.state.settings)
        request.app.state.closing.push_async_callback(kb.aclose)  # stops its background e5 work on shutdown
    return kb


async def get_pipeline(request: Request) -> AnswerPipeline:
    """The process's answer pipeline (the embedded worker's own, when there is one), created on first use."""
    pipeline = getattr(request.app.state, "pipeline", None)
    if pipeline is None:
        state = request.app.state
        pipeline = state.pipeline = build_pipeline(state.settings, state.db, knowledge=await get_knowledge(request))
        state.closing.push_async_callback(pipeline.aclose)
    return pipeline


async def get_response_cache(request: Request) -> ResponseCache | None:
    """The response cache of this process's pipeline (the embedded worker's), if one was built."""
    pipeline = getattr(request.app.state, "pipeline", None)
    return pipeline.cache if pipeline is not None else None


SessionDep = Annotated[AsyncSession, Depends(get_session)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
DatabaseDep = Annotated[Database, Depends(get_db)]
SkillServiceDep = Annotated[SkillService, Depends(get_skill_service)]
KnowledgeDep = Annotated[KnowledgeBase, Depends(get_knowledge)]
PipelineDep = Annotated[AnswerPipeline, Depends(get_pipeline)]
ResponseCacheDep = Annotated[ResponseCache | None, Depends(get_response_cache)]


async def get_chat_service(request: Request) -> ChatService:
    """The process's chat API service (rate limits and budget reservations live in it), created on first use."""
    state = request.app.state
    chat = getattr(state, "chat", None)
    if chat is None:
        pipeline = await get_pipeline(request)
        # Its own client for the usage alerts' webhook, closed at shutdown.
        http = httpx.AsyncClient(timeout=10.0)
        state.closing.push_async_callback(http.aclose)
        chat = state.chat = ChatService(state.settings, state.db, pipeline, UsageService(state.settings, state.db, http))
    return chat


async def get_speech(request: Request) -> SpeechService:
    speech = getattr(request.app.state, "speech", None)
    if speech is None:
        speech = request.app.state.speech = SpeechService(request.app.state.settings, request.app.state.db.engine)
        request.app.state.closing.push_async_callback(speech.aclose)
    return speech


# Declares the chat API's bearer auth in the OpenAPI schema; the key is checked by require_api_key.
_KEY_BEARER = HTTPBearer(auto_error=False, scheme_name="ApiKey", description="A key from POST /admin/api-keys")


async def require_api_key(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_KEY_BEARER)],
    chat: Annotated[ChatService, Depends(get_chat_service)],
) -> KeyRef:
    """The live key of `Authorization: Bearer kb-...`, within its rate limit."""
    if credentials is None or credentials.scheme.lower() != "bearer" or not credentials.credentials:
        raise InvalidApiKey("No API key provided: send 'Authorization: Bearer <key>'.")
    async with request.app.state.db.sessions() as session:
        key = await keys.authenticate(session, credentials.credentials)
    chat.limiter.check(key.id)
    return key


ChatServiceDep = Annotated[ChatService, Depends(get_chat_service)]
SpeechDep = Annotated[SpeechService, Depends(get_speech)]
ApiKeyDep = Annotated[KeyRef, Depends(require_api_key)]
