"""Admin API for the chat API's keys: create (the key is shown once), list (never the secret), revoke."""

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Response, status
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from app.api.deps import ADMIN_ERRORS, MAX_DB_INT, RowId, SessionDep, error_responses, json_integer, require_admin
from app.errors import NotFound
from app.services.chat import keys

router = APIRouter(
    prefix="/admin/api-keys", tags=["admin: api keys"], dependencies=[Depends(require_admin)], responses=ADMIN_ERRORS
)


class ApiKeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    name: str = Field(min_length=1, max_length=100, description="What the key is for, e.g. 'website widget'")
    bot_id: str = Field(min_length=1, max_length=100, description="The bot the key answers as (its model id)")
    # The JSON-integer check wraps the union, so the bounds stay on the integer in the schema (minimum, maximum).
    monthly_token_limit: Annotated[
        Annotated[int, Field(strict=False, ge=1, le=MAX_DB_INT)] | None, BeforeValidator(json_integer)
    ] = Field(
        default=None, description="Tokens the key's answers may use per calendar month (Asia/Seoul); none = no limit"
    )
    allow_system_messages: bool = Field(default=False, description="Let clients send their own system messages")


class ApiKeyOut(BaseModel):
    id: int
    name: str
    bot_id: str
    prefix: str = Field(description="The key's first characters, to recognise it")
    monthly_token_limit: int | None
    allow_system_messages: bool
    created_at: datetime
    revoked_at: datetime | None


class ApiKeyCreated(ApiKeyOut):
    key: str = Field(description="The secret: shown this once, stored only as a hash")


@router.post("", response_model=ApiKeyCreated, status_code=status.HTTP_201_CREATED, responses=error_responses(400, 422))
async def create_api_key(body: ApiKeyCreate, session: SessionDep) -> ApiKeyCreated:
    key, secret = await keys.create_key(session, **body.model_dump())
    return ApiKeyCreated.model_validate({**key.model_dump(), "key": secret})


@router.get("", response_model=list[ApiKeyOut])
async def list_api_keys(session: SessionDep) -> list[ApiKeyOut]:
    return [ApiKeyOut.model_validate(key.model_dump()) for key in await keys.list_keys(session)]


@router.delete("/{key_id}", status_code=status.HTTP_204_NO_CONTENT, responses=error_responses(404))
async def revoke_api_key(key_id: RowId, session: SessionDep) -> Response:
    """Revoke the key: its next request is refused."""
    if not await keys.revoke_key(session, key_id):
        raise NotFound(f"no API key {key_id}")
    return Response(status_code=status.HTTP_204_NO_CONTENT)
