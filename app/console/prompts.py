"""프롬프트: versions per bot and name, a new version (placeholders checked), a diff between two, activate."""

import difflib
import re
from itertools import groupby
from typing import Annotated

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from app.api.deps import MAX_DB_INT, RowId, SessionDep
from app.console.deps import ConsoleDep, render
from app.errors import NotFound
from app.models import PromptTemplate
from app.services import prompts

router = APIRouter(prefix="/console/prompts", include_in_schema=False)
VersionId = Annotated[int, Query(ge=1, le=MAX_DB_INT)]


async def _page(request: Request, session: SessionDep, *, status_code: int = 200, **context: object) -> HTMLResponse:
    versions = await prompts.list_templates(session, all_versions=True)
    groups = [(key, list(rows)) for key, rows in groupby(versions, key=lambda t: (t.bot_id, t.name))]
    return render(request, "prompts.html", {
        "groups": groups,
        "variables": prompts.VARIABLES,
        "form": {"bot_id": "", "name": prompts.DEFAULT_NAME, "system_prompt": "", "description": ""},
        **context,
    }, status_code=status_code)


@router.get("", response_class=HTMLResponse)
async def prompt_list(request: Request, session: SessionDep, _: ConsoleDep) -> HTMLResponse:
    return await _page(request, session, notice=_notice(request))


@router.post("/check")
async def check(_: ConsoleDep, system_prompt: Annotated[str, Form(max_length=20_000)] = "") -> JSONResponse:
    """The placeholder check of a draft, for the form to show before saving."""
    try:
        prompts.validate_template(system_prompt)
    except prompts.TemplateError as exc:
        return JSONResponse({"ok": False, "message": exc.message, "placeholder": exc.placeholder})
    used = sorted({f"{{{v}}}" for v in prompts.VARIABLES if f"{{{v}}}" in system_prompt})
    return JSONResponse({"ok": True, "message": "사용한 변수: " + (", ".join(used) or "없음")})


@router.post("", response_class=HTMLResponse)
async def create(
    request: Request,
    session: SessionDep,
    _: ConsoleDep,
    name: Annotated[str, Form(max_length=100)],
    system_prompt: Annotated[str, Form(max_length=20_000)],
    bot_id: Annotated[str, Form(max_length=100)] = "",
    description: Annotated[str, Form(max_length=500)] = "",
) -> Response:
    form = {"bot_id": bot_id, "name": name, "system_prompt": system_prompt, "description": description}
    if not re.fullmatch(prompts.NAME_PATTERN, name.strip()) or not system_prompt.strip():
        error = "이름(한글, 영문, 숫자, 공백, _ . -)과 프롬프트를 입력해 주세요."
        return await _page(request, session, form=form, error=error, status_code=422)
    try:
        template = await prompts.create_version(
            session, name=name.strip(), system_prompt=system_prompt,
            description=description.strip() or None, bot_id=bot_id.strip(),
        )
    except prompts.TemplateError as exc:
        return await _page(request, session, form=form, error=f"변수를 확인해 주세요: {exc.message}", status_code=422)
    return RedirectResponse(f"/console/prompts?created={template.id}", status_code=303)


@router.post("/{prompt_id}/activate")
async def activate(prompt_id: RowId, session: SessionDep, _: ConsoleDep) -> Response:
    template = await prompts.activate(session, prompt_id)
    if template is None:
        raise NotFound(f"no prompt template {prompt_id}")
    return RedirectResponse(f"/console/prompts?activated={template.id}", status_code=303)


@router.get("/diff", response_class=HTMLResponse)
async def diff(request: Request, session: SessionDep, _: ConsoleDep, a: VersionId, b: VersionId) -> HTMLResponse:
    old, new = await session.get(PromptTemplate, a), await session.get(PromptTemplate, b)
    if old is None or new is None:
        raise NotFound("prompt version not found")
    lines = list(difflib.unified_diff(
        old.system_prompt.splitlines(), new.system_prompt.splitlines(),
        f"v{old.version}", f"v{new.version}", lineterm="",
    ))
    return render(request, "prompt_diff.html", {"old": old, "new": new, "lines": lines})


def _notice(request: Request) -> str | None:
    if request.query_params.get("created"):
        return "새 버전을 저장하고 활성화했어요."
    if request.query_params.get("activated"):
        return "선택한 버전을 활성화했어요."
    return None
