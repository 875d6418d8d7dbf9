"""시뮬레이터: a phone-like KakaoTalk screen that sends real Kakao payloads through the real `/skill` route.

The request goes through the app itself (secret header, body cap, parsing, intake), the embedded or any other
worker answers it, and in callback mode the answer arrives at the simulator sink (app/services/simulator.py)
instead of a callback host, which the page then polls for.
"""

import secrets
from typing import Annotated, Any

import httpx
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from app.api.deps import SessionDep
from app.console.deps import ConsoleDep, render
from app.kakao import MAX_UTTERANCE_CHARS
from app.services.simulator import delivered, new_sink

router = APIRouter(prefix="/console/simulator", include_in_schema=False)
Id = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=70)]
SinkId = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{32}$")]


class SimulatedMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")

    bot_id: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
    user_id: Id
    utterance: str = Field(min_length=1, max_length=MAX_UTTERANCE_CHARS)
    callback: bool = True


def kakao_payload(message: SimulatedMessage, callback_url: str | None) -> dict[str, Any]:
    """The request Kakao i Open Builder sends for a message to the fallback block."""
    user_request: dict[str, Any] = {
        "block": {"id": "console-simulator", "name": "폴백 블록"},
        "user": {
            "id": message.user_id,
            "type": "botUserKey",
            "properties": {"botUserKey": message.user_id, "isFriend": True},
        },
        "utterance": message.utterance,
        "params": {"surface": "Kakaotalk.plusfriend"},
        "lang": "ko",
        "timezone": "Asia/Seoul",
    }
    if callback_url:
        user_request["callbackUrl"] = callback_url
    return {
        "bot": {"id": message.bot_id, "name": "시뮬레이터"},
        "intent": {"id": "console-simulator", "name": "폴백 블록"},
        "action": {"id": "console-simulator", "name": "AI 답변 스킬", "params": {}, "detailParams": {}},
        "userRequest": user_request,
        "contexts": [],
    }


@router.get("", response_class=HTMLResponse)
async def simulator(request: Request, _: ConsoleDep) -> HTMLResponse:
    settings = request.app.state.settings
    return render(request, "simulator.html", {
        "bot_id": settings.default_bot_id, "user_id": "console-" + secrets.token_hex(3),
    })


@router.post("/send")
async def send(message: SimulatedMessage, request: Request, _: ConsoleDep) -> JSONResponse:
    """POST the message to /skill as Kakao would; the skill's reply and, in callback mode, the sink to poll."""
    settings = request.app.state.settings
    sink, url = new_sink(settings) if message.callback else (None, None)
    headers = {settings.kakao_skill_secret_header: settings.kakao_skill_secret} if settings.kakao_skill_secret else {}
    transport = httpx.ASGITransport(app=request.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://console.local") as client:
        reply = await client.post("/skill", json=kakao_payload(message, url), headers=headers, timeout=10)
    body = reply.json()
    return JSONResponse({
        "status": reply.status_code,
        "reply": body,
        # A sink only when /skill took the callback (it may not: a command, a late answer, or overload).
        "sink": sink if body.get("useCallback") else None,
    })


@router.get("/callbacks/{sink}")
async def callbacks(sink: SinkId, session: SessionDep, _: ConsoleDep) -> JSONResponse:
    """What the worker delivered to this sink so far."""
    return JSONResponse({"deliveries": await delivered(session, sink)})
