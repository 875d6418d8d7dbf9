"""Dev-only endpoints (mounted when DEBUG=true): run the whole skill flow locally, Kakao stand-in included."""

import asyncio
import time
import uuid
from collections import OrderedDict
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from app.api.deps import SkillServiceDep, error_responses
from app.errors import NotFound
from app.kakao import MAX_UTTERANCE_CHARS, SkillPayload
from app.kakao.payload import Text
from app.models import utcnow
from app.services.callback_policy import DEV_CALLBACK_PATH
from app.services.names import extract_name

router = APIRouter(tags=["dev"])
MAX_RECORDED = 200


class TestSkillRequest(BaseModel):
    model_config = ConfigDict(strict=True)

    # Text: the skill payload's own rule (no NUL), so a request it would refuse is a 422 here too.
    utterance: Text = Field(min_length=1, max_length=MAX_UTTERANCE_CHARS)
    user_id: Text = Field("test-user", min_length=1, max_length=70)
    bot_id: Text = Field("test-bot", min_length=1, max_length=100)
    use_callback: bool = True


class TestSkillResult(BaseModel):
    skill_response: dict[str, Any]
    callback_id: str | None = Field(description="GET /test-callback/{callback_id} shows what the callback received")
    callback_note: str


class NameExtractionRequest(BaseModel):
    model_config = ConfigDict(strict=True)

    sentence: str = Field(min_length=1, max_length=MAX_UTTERANCE_CHARS)


class NameExtractionResult(BaseModel):
    sentence: str
    name: str | None


class RecordedCallback(BaseModel):
    callback_id: str
    received_at: str
    body: Any


def _recorded(request: Request) -> "OrderedDict[str, RecordedCallback]":
    return request.app.state.test_callbacks


@router.post(
    "/test-skill", response_model=TestSkillResult, summary="Run an utterance through /skill locally",
    responses=error_responses(400),
)
async def test_skill(body: TestSkillRequest, request: Request, service: SkillServiceDep) -> TestSkillResult:
    callback_id = uuid.uuid4().hex if body.use_callback else None
    data: dict[str, Any] = {
        "bot": {"id": body.bot_id, "name": "테스트 봇"},
        "userRequest": {"utterance": body.utterance, "user": {"id": body.user_id}, "lang": "ko"},
    }
    note = "no callback requested: the reply waits for the answer like Kakao's bot test console"
    if callback_id:
        url = str(request.url_for("receive_test_callback", callback_id=callback_id))
        data["userRequest"]["callbackUrl"] = url
        if service.callback_problem(url) is None:
            note = "callback accepted: the worker will POST the answer to /test-callback"
        else:
            note = (
                "callback refused by the allow-list: set KAKAO_CALLBACK_ALLOW_HTTP=true and add "
                f"{request.url.hostname} to KAKAO_CALLBACK_ALLOWED_HOSTS"
            )
            callback_id = None
    payload = SkillPayload.model_validate(data)
    reply = await service.handle(payload, arrived_at=utcnow(), started=time.monotonic())
    return TestSkillResult(skill_response=reply.to_dict(), callback_id=callback_id, callback_note=note)


async def _receive(request: Request, callback_id: str) -> dict[str, Any]:
    """Record the callback and answer like Kakao; a callback id is taken once."""
    recorded = _recorded(request)
    now_ms = int(time.time() * 1000)
    if callback_id in recorded:
        return {"taskId": callback_id, "status": "FAIL", "message": "Invalid callback token.", "timestamp": now_ms}
    try:
        body = await request.json()
    except ValueError:
        return {"taskId": callback_id, "status": "FAIL", "message": "Invalid json response from bot-skill.",
                "timestamp": now_ms}
    recorded[callback_id] = RecordedCallback(callback_id=callback_id, received_at=utcnow().isoformat(), body=body)
    while len(recorded) > MAX_RECORDED:
        recorded.popitem(last=False)
    return {"taskId": callback_id, "status": "SUCCESS", "message": "OK", "timestamp": now_ms}


@router.post(f"{DEV_CALLBACK_PATH}/{{callback_id}}", name="receive_test_callback", summary="Kakao callback stand-in")
async def receive_test_callback(callback_id: str, request: Request) -> dict[str, Any]:
    """Answers like Kakao: each callback URL works once."""
    return await _receive(request, callback_id)


@router.post(DEV_CALLBACK_PATH, summary="Kakao callback stand-in without an id (seed 003's walk-through)")
async def receive_any_test_callback(request: Request) -> dict[str, Any]:
    """Every POST is recorded under a new id: this one URL serves every request, so it cannot work only once."""
    return await _receive(request, uuid.uuid4().hex)


@router.get(DEV_CALLBACK_PATH, response_model=list[RecordedCallback], summary="Callbacks received, newest first")
async def list_test_callbacks(request: Request) -> list[RecordedCallback]:
    return list(reversed(_recorded(request).values()))


@router.get(
    f"{DEV_CALLBACK_PATH}/{{callback_id}}", response_model=RecordedCallback, summary="One received callback",
    responses=error_responses(404),
)
async def get_test_callback(callback_id: str, request: Request) -> RecordedCallback:
    recorded = _recorded(request).get(callback_id)
    if recorded is None:
        raise NotFound("no callback received for this id yet")
    return recorded


@router.post(
    "/test-name-extraction", response_model=NameExtractionResult, summary="Name recognised in a sentence",
    responses=error_responses(400),
)
async def test_name_extraction(body: NameExtractionRequest) -> NameExtractionResult:
    # The morphological analyser is CPU-bound and loads lazily; keep it off the event loop.
    name = await asyncio.to_thread(extract_name, body.sentence)
    return NameExtractionResult(sentence=body.sentence, name=name)
