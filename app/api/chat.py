"""The OpenAI-compatible chat API (`/v1`) and the seed's paths for the same handlers (`/api/chat`, `/api/models`)."""

from typing import Any

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.background import BackgroundTask

from app.api.deps import ApiKeyDep, ChatServiceDep
from app.api.openai_errors import OPENAI_ERRORS, OpenAIRoute, openai_responses
from app.services.chat.callers import Caller
from app.services.chat.schemas import ChatCompletionRequest
from app.services.chat.service import ChatService

router = APIRouter(tags=["chat API (OpenAI-compatible)"], route_class=OpenAIRoute, responses=OPENAI_ERRORS)
_NOT_FOUND = openai_responses(404)

# Nginx and similar proxies would otherwise hold the chunks back until the answer is complete.
_SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


@router.get("/v1/models")
@router.get("/api/models")
async def list_models(key: ApiKeyDep, chat: ChatServiceDep) -> dict[str, Any]:
    """The model this key may call: its bot, named by the bot's id."""
    return chat.models(key)


@router.get("/v1/models/{model}", responses=_NOT_FOUND)
async def retrieve_model(model: str, key: ApiKeyDep, chat: ChatServiceDep) -> dict[str, Any]:
    return chat.model(key, model)


@router.post("/v1/chat/completions", responses=_NOT_FOUND)
@router.post("/api/chat/completions", responses=_NOT_FOUND)
async def chat_completions(body: ChatCompletionRequest, key: ApiKeyDep, chat: ChatServiceDep) -> Response:
    """Answer like OpenAI's Chat Completions; `stream: true` sends `chat.completion.chunk` Server-Sent Events."""
    if body.stream:
        return await stream_response(chat, key, body)
    return JSONResponse(await chat.complete(key, body))


@router.post("/api/chat/stream", responses=_NOT_FOUND)
async def chat_stream(body: ChatCompletionRequest, key: ApiKeyDep, chat: ChatServiceDep) -> Response:
    """The same as `/v1/chat/completions`, always streamed."""
    return await stream_response(chat, key, body)


async def stream_response(chat: ChatService, caller: Caller, body: ChatCompletionRequest) -> StreamingResponse:
    """The answer as `chat.completion.chunk` Server-Sent Events (also the console's 채팅 page's)."""
    stream = await chat.open_stream(caller, body)
    # The background close also runs when the client left while a chunk was being sent (the body is then
    # never resumed), so the upstream call is always cancelled and the answer always stored.
    return StreamingResponse(
        stream.events(), media_type="text/event-stream", headers=_SSE_HEADERS, background=BackgroundTask(stream.close)
    )
