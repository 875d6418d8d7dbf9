"""대화: find a user, then read their conversations with the bot's answers drawn as Kakao bubbles."""

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from app.api.deps import RowId, SessionDep
from app.console.deps import ConsoleDep, render
from app.errors import NotFound
from app.services.conversations import recent_conversations
from app.services.users import get_user, list_users

router = APIRouter(prefix="/console/conversations", include_in_schema=False)
Filter = Annotated[str, Query(max_length=100)]


@router.get("", response_class=HTMLResponse)
async def users(request: Request, session: SessionDep, _: ConsoleDep, bot: Filter = "", q: Filter = "") -> HTMLResponse:
    found = await list_users(session, bot_id=bot.strip() or None, search=q.strip() or None)
    return render(request, "users.html", {"users": found, "filters": {"bot": bot, "q": q}})


@router.get("/{user_id}", response_class=HTMLResponse)
async def user_conversations(user_id: RowId, request: Request, session: SessionDep, _: ConsoleDep) -> HTMLResponse:
    user = await get_user(session, user_id)
    if user is None:
        raise NotFound("user not found")
    conversations = await recent_conversations(session, user_id)
    return render(request, "conversations.html", {"user": user, "conversations": conversations})
