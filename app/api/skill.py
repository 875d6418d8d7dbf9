"""Kakao skill endpoints: `/skill` (answers via the queue) and `/welcome`."""

import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from app.api.deps import SkillServiceDep, error_responses
from app.api.kakao_input import authenticate, parse_payload, read_capped_body
from app.kakao import SkillPayload, SkillResponse
from app.models import utcnow

router = APIRouter(tags=["kakao"])

# The body is read by hand (size cap, Kakao-shaped errors), so its schema is declared for the docs.
_PAYLOAD_SCHEMA = SkillPayload.model_json_schema(by_alias=True, ref_template="#/components/schemas/{model}")
PAYLOAD_SCHEMA_DEFS: dict[str, Any] = _PAYLOAD_SCHEMA.pop("$defs", {})
_PAYLOAD_DOC = {
    "requestBody": {"required": True, "content": {"application/json": {"schema": _PAYLOAD_SCHEMA}}}
}


def kakao_json(response: SkillResponse) -> JSONResponse:
    return JSONResponse(response.to_dict())


# Not JSON or not UTF-8: 400; wrong secret header: 401; over SKILL_MAX_BODY_BYTES: 413; not a SkillPayload: 422.
_ERRORS = error_responses(400, 401, 413, 422)


@router.post(
    "/skill", summary="Kakao skill: store, enqueue, acknowledge", openapi_extra=_PAYLOAD_DOC, responses=_ERRORS
)
async def skill(request: Request, service: SkillServiceDep) -> JSONResponse:
    started = time.monotonic()
    arrived_at = utcnow()
    authenticate(request, service.settings)
    parsed = parse_payload(
        await read_capped_body(request, service.settings.skill_max_body_bytes), service.settings.default_bot_id
    )
    if isinstance(parsed, SkillResponse):
        return kakao_json(parsed)
    return kakao_json(await service.handle(parsed, arrived_at=arrived_at, started=started))


@router.post(
    "/welcome", summary="Kakao welcome block: greet the user by name", openapi_extra=_PAYLOAD_DOC, responses=_ERRORS
)
async def welcome(request: Request, service: SkillServiceDep) -> JSONResponse:
    authenticate(request, service.settings)
    parsed = parse_payload(
        await read_capped_body(request, service.settings.skill_max_body_bytes), service.settings.default_bot_id
    )
    if isinstance(parsed, SkillResponse):
        return kakao_json(parsed)
    return kakao_json(await service.welcome(parsed))
