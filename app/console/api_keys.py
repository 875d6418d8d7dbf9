"""API 키: create a chat API key (its secret shown once), list keys, revoke one."""

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from app.api.deps import RowId, SessionDep
from app.console.deps import ConsoleDep, render
from app.errors import NotFound
from app.services.chat import keys

router = APIRouter(prefix="/console/api-keys", include_in_schema=False)


async def _page(request: Request, session: SessionDep, **context: object) -> HTMLResponse:
    return render(request, "api_keys.html", {
        "keys": await keys.list_keys(session), "default_bot": request.app.state.settings.default_bot_id, **context,
    })


@router.get("", response_class=HTMLResponse)
async def key_list(request: Request, session: SessionDep, _: ConsoleDep) -> HTMLResponse:
    revoked = request.query_params.get("revoked")
    return await _page(request, session, notice="키를 폐기했어요." if revoked else None)


@router.post("", response_class=HTMLResponse)
async def create(
    request: Request,
    session: SessionDep,
    _: ConsoleDep,
    name: Annotated[str, Form(min_length=1, max_length=100)],
    bot_id: Annotated[str, Form(min_length=1, max_length=100)],
    monthly_token_limit: Annotated[int | None, Form(ge=1, le=2**31 - 1)] = None,
    allow_system_messages: Annotated[bool, Form()] = False,
) -> HTMLResponse:
    key, secret = await keys.create_key(
        session, name=name.strip(), bot_id=bot_id.strip(), monthly_token_limit=monthly_token_limit,
        allow_system_messages=allow_system_messages,
    )
    # The secret is in this one response only: it is stored as a hash and never shown again.
    return await _page(request, session, created=key, secret=secret)


@router.post("/{key_id}/revoke")
async def revoke(key_id: RowId, session: SessionDep, _: ConsoleDep) -> Response:
    if not await keys.revoke_key(session, key_id):
        raise NotFound(f"no API key {key_id}")
    return RedirectResponse("/console/api-keys?revoked=1", status_code=303)
