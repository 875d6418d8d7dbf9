"""채팅: talk to a bot through the chat API's service, the answer streamed token by token.

The console session stands in for an API key: the data route runs the same chat service and the same SSE
stream as `/v1/chat/completions`, counted against the bot's budget (no key involved).
"""

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, StreamingResponse

from app.api.chat import stream_response
from app.api.deps import ChatServiceDep, SessionDep
from app.console.deps import ConsoleDep, render
from app.services.chat.callers import ConsoleCaller
from app.services.chat.schemas import ChatCompletionRequest
from app.services.users import bot_ids

router = APIRouter(prefix="/console/chat", include_in_schema=False)


@router.get("", response_class=HTMLResponse)
async def chat(request: Request, session: SessionDep, _: ConsoleDep) -> HTMLResponse:
    default = request.app.state.settings.default_bot_id
    bots = [default, *(bot for bot in await bot_ids(session) if bot != default)]
    return render(request, "chat.html", {"bot_id": default, "bots": bots})


@router.post("/completions")
async def completions(body: ChatCompletionRequest, _: ConsoleDep, chat: ChatServiceDep) -> StreamingResponse:
    """`model` names the bot; always streamed, as `chat.completion.chunk` events and `[DONE]`."""
    return await stream_response(chat, ConsoleCaller(bot_id=body.model), body)
