"""API 키: create a chat API key (its secret shown once), list keys, revoke one.

Creating redirects to the list (Post/Redirect/Get), which shows the new secret once from a flash cookie: reloading
the list neither shows it again nor creates a second key.
"""

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from app.api.deps import RowId, SessionDep
from app.console.deps import ConsoleDep, render
from app.console.session import end_flash, read_flash, set_flash
from app.errors import NotFound
from app.services.chat import keys

PATH = "/console/api-keys"
router = APIRouter(prefix=PATH, include_in_schema=False)


@router.get("", response_class=HTMLResponse)
async def key_list(request: Request, session: SessionDep, console: ConsoleDep) -> HTMLResponse:
    settings = request.app.state.settings
    response = render(request, "api_keys.html", {
        "keys": await keys.list_keys(session),
        "default_bot": settings.default_bot_id,
        "notice": "키를 폐기했어요." if request.query_params.get("revoked") else None,
        "created": read_flash(request, settings, console),
    })
    end_flash(request, response, PATH)
    return response


@router.post("")
async def create(
    request: Request,
    session: SessionDep,
    console: ConsoleDep,
    name: Annotated[str, Form(min_length=1, max_length=100)],
    bot_id: Annotated[str, Form(min_length=1, max_length=100)],
    monthly_token_limit: Annotated[int | None, Form(ge=1, le=2**31 - 1)] = None,
    allow_system_messages: Annotated[bool, Form()] = False,
) -> Response:
    key, secret = await keys.create_key(
        session, name=name.strip(), bot_id=bot_id.strip(), monthly_token_limit=monthly_token_limit,
        allow_system_messages=allow_system_messages,
    )
    # The secret is stored only as a hash: the page after the redirect shows it once, from this flash.
    response = RedirectResponse(PATH, status_code=303)
    set_flash(request, response, request.app.state.settings, console, PATH, {"name": key.name, "secret": secret})
    return response


@router.post("/{key_id}/revoke")
async def revoke(key_id: RowId, session: SessionDep, _: ConsoleDep) -> Response:
    if not await keys.revoke_key(session, key_id):
        raise NotFound(f"no API key {key_id}")
    return RedirectResponse(f"{PATH}?revoked=1", status_code=303)
