"""Commands the skill endpoint answers at once, without the worker: a small dispatch table."""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.kakao import SkillResponse, text_reply
from app.kakao.payload import SkillPayload
from app.queue import open_task_count, take_pending_answers
from app.services import texts
from app.services.answers import late_answer_reply
from app.services.names import InvalidName, validate_name
from app.services.users import UserRef, set_name, set_name_mode


@dataclass(frozen=True, slots=True)
class CommandContext:
    """What a command handler may use; it runs inside the request's transaction."""

    session: AsyncSession
    settings: Settings
    payload: SkillPayload
    user: UserRef
    args: str
    now: datetime


Handler = Callable[[CommandContext], Awaitable[SkillResponse]]


def normalize(utterance: str) -> str:
    return " ".join(utterance.split())


class CommandTable:
    """Exact phrases and `/prefix args` commands mapped to handlers."""

    def __init__(self) -> None:
        self._exact: dict[str, Handler] = {}
        self._prefix: dict[str, Handler] = {}

    def exact(self, *phrases: str) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            for phrase in phrases:
                self._exact[normalize(phrase)] = handler
            return handler

        return register

    def prefix(self, word: str) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            self._prefix[word] = handler
            return handler

        return register

    def match(self, utterance: str) -> tuple[Handler, str] | None:
        """The handler for `utterance` and its argument text, or None for an ordinary message."""
        text = normalize(utterance)
        if text in self._exact:
            return self._exact[text], ""
        word, _, args = text.partition(" ")
        if word in self._prefix:
            return self._prefix[word], args
        return None


COMMANDS = CommandTable()


@COMMANDS.exact(texts.CHECK_ANSWER, "답변확인")
async def check_answer(ctx: CommandContext) -> SkillResponse:
    """Deliver answers still owed to the user, or say whether one is on its way."""
    answers = await take_pending_answers(ctx.session, ctx.user.id, now=ctx.now)
    if answers:
        return late_answer_reply(answers)
    if await open_task_count(ctx.session, ctx.user.id):
        return text_reply(texts.STILL_WORKING, quick_replies=[texts.CHECK_ANSWER])
    return text_reply(texts.NOTHING_PENDING)


@COMMANDS.exact("/이름", "다른 이름", "이름 바꿔", "이름 바꾸기", "이름 변경")
async def enter_name_mode(ctx: CommandContext) -> SkillResponse:
    """The next utterance will be taken as the user's name."""
    await set_name_mode(ctx.session, ctx.user, on=True)
    return text_reply(texts.NAME_ASK, quick_replies=[texts.CANCEL])


@COMMANDS.prefix("/이름")
async def set_name_now(ctx: CommandContext) -> SkillResponse:
    return await save_name(ctx, ctx.args, source="command")


@COMMANDS.exact(texts.CANCEL)
async def cancel(ctx: CommandContext) -> SkillResponse:
    if not ctx.user.name_mode:
        return text_reply(texts.NOTHING_TO_CANCEL)
    await set_name_mode(ctx.session, ctx.user, on=False)
    return text_reply(texts.NAME_CANCELLED)


async def save_name(ctx: CommandContext, raw: str, *, source: str) -> SkillResponse:
    """Validate and store a name; an invalid one is explained and name mode stays as it was."""
    try:
        name = validate_name(raw)
    except InvalidName as exc:
        return text_reply(str(exc), quick_replies=[texts.CANCEL] if ctx.user.name_mode else None)
    await set_name(ctx.session, ctx.user, bot_id=ctx.payload.bot_key, name=name, now=ctx.now, source=source)
    return text_reply(texts.NAME_SET.format(name=name))


async def name_mode_reply(ctx: CommandContext) -> SkillResponse:
    """In name mode the whole utterance is the name."""
    return await save_name(ctx, ctx.args, source="name_mode")
