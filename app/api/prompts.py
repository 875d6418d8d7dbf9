"""Admin API for prompt templates: list, add a version, show versions, activate one."""

from typing import Annotated

from fastapi import APIRouter, Depends, Query, status
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from app.api.deps import ADMIN_ERRORS, RowId, SessionDep, error_responses, require_admin
from app.errors import NotFound
from app.models import PromptTemplate
from app.services import prompts

router = APIRouter(
    prefix="/admin/prompts", tags=["admin: prompts"], dependencies=[Depends(require_admin)], responses=ADMIN_ERRORS
)

TemplateName = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100, pattern=prompts.NAME_PATTERN)
]
BotFilter = Annotated[str | None, Query(max_length=100, description='A Kakao bot id; "" is the all-bots set')]


class PromptCreate(BaseModel):
    """A new version of a template; `name` is a Kakao block name or `default`."""

    model_config = ConfigDict(extra="forbid", strict=True)

    name: TemplateName
    # The pattern documents the placeholder rules; the service checks them, naming the bad placeholder.
    system_prompt: str = Field(
        min_length=1,
        max_length=20_000,
        json_schema_extra={"pattern": prompts.TEMPLATE_PATTERN},
        description="Placeholders: " + ", ".join(f"{{{v}}}" for v in prompts.VARIABLES) + "; '{{' and '}}' are literal braces",
    )
    description: str | None = Field(default=None, max_length=500)
    bot_id: str = Field(default=prompts.ALL_BOTS, max_length=100, description='"" applies to every bot')


@router.get("", response_model=list[PromptTemplate])
async def list_prompts(
    session: SessionDep,
    all_versions: Annotated[bool, Query(alias="all")] = False,
    bot_id: BotFilter = None,
) -> list[PromptTemplate]:
    return await prompts.list_templates(session, all_versions=all_versions, bot_id=bot_id)


@router.post(
    "", response_model=PromptTemplate, status_code=status.HTTP_201_CREATED, responses=error_responses(400, 422)
)
async def create_prompt(body: PromptCreate, session: SessionDep) -> PromptTemplate:
    return await prompts.create_version(session, **body.model_dump())


@router.get("/{name}", response_model=list[PromptTemplate], responses=error_responses(404))
async def prompt_versions(name: str, session: SessionDep, bot_id: BotFilter = None) -> list[PromptTemplate]:
    found = await prompts.versions(session, name, bot_id=bot_id)
    if not found:
        raise NotFound(f"no prompt template named {name!r}")
    return found


@router.post("/{prompt_id}/activate", response_model=PromptTemplate, responses=error_responses(404))
async def activate_prompt(prompt_id: RowId, session: SessionDep) -> PromptTemplate:
    template = await prompts.activate(session, prompt_id)
    if template is None:
        raise NotFound(f"no prompt template {prompt_id}")
    return template
