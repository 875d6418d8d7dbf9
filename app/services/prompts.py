"""Prompt templates: placeholder rules, rendering, and versioned storage with one active version."""

from datetime import date, datetime
from string import Formatter
from zoneinfo import ZoneInfo

from pydantic import BaseModel, Field
from sqlalchemy import func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import InvalidInput
from app.models import PromptTemplate
from app.services.errors import PermanentError

VARIABLES = ("user_name", "bot_name", "today", "summary", "context", "utterance")
# What `validate_template` accepts, as a regular expression for the API schema: text, doubled braces, and
# plain `{variable}` placeholders.
TEMPLATE_PATTERN = r"^(?:[^{}]|\{\{|\}\}|\{(?:" + "|".join(VARIABLES) + r")\})*$"
# A template name: a Kakao block name or `default`; letters, digits, Hangul, space, `_`, `.`, `-`.
NAME_PATTERN = r"^[A-Za-z0-9가-힣 _.\-]*[A-Za-z0-9가-힣_.\-][A-Za-z0-9가-힣 _.\-]*$"
DEFAULT_NAME = "default"
ALL_BOTS = ""
KST = ZoneInfo("Asia/Seoul")
NO_NAME = "고객"
NOTHING = "(없음)"
_WEEKDAYS = "월화수목금토일"


class TemplateError(InvalidInput):
    """A template that cannot be used; `placeholder` is the offending `{...}` when there is one."""

    code = "invalid_template"

    def __init__(self, message: str, placeholder: str | None = None) -> None:
        super().__init__(message)
        self.placeholder = placeholder


class PromptVariables(BaseModel):
    """The values a template may use; empty ones get natural stand-ins."""

    user_name: str | None = None
    bot_name: str = "우리 서비스"
    today: date = Field(default_factory=lambda: datetime.now(KST).date())
    summary: str | None = None
    context: str | None = None
    utterance: str = ""

    def as_text(self) -> dict[str, str]:
        day = self.today
        return {
            "user_name": (self.user_name or "").strip() or NO_NAME,
            "bot_name": self.bot_name,
            "today": f"{day.year}년 {day.month}월 {day.day}일 ({_WEEKDAYS[day.weekday()]})",
            "summary": (self.summary or "").strip() or NOTHING,
            "context": (self.context or "").strip() or NOTHING,
            "utterance": self.utterance,
        }


def validate_template(text: str) -> None:
    """Raise `TemplateError` unless every placeholder is a plain allowed `{name}`."""
    allowed = ", ".join(f"{{{v}}}" for v in VARIABLES)
    try:
        fields = [(f, spec, conv) for _, f, spec, conv in Formatter().parse(text) if f is not None]
    except ValueError:
        raise TemplateError("unbalanced braces; write a literal brace twice: '{{' or '}}'") from None
    for field, spec, conversion in fields:
        shown = "{" + field + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "") + "}"
        if field == "" or field.isdigit():
            raise TemplateError(f"unnamed placeholder {shown}; allowed: {allowed}", shown)
        if "." in field or "[" in field:
            raise TemplateError(f"placeholder {shown} uses an attribute or an index, which is not allowed", shown)
        if field not in VARIABLES:
            raise TemplateError(f"unknown placeholder {shown}; allowed: {allowed}", shown)
        if spec or conversion:
            raise TemplateError(f"placeholder {shown} has a format spec or conversion (: or !), which is not allowed", shown)


def render_template(text: str, variables: PromptVariables) -> str:
    """Fill the placeholders; values are inserted as they are, never parsed again."""
    validate_template(text)
    return text.format_map(variables.as_text())


# --- storage ------------------------------------------------------------------------------------------


async def create_version(
    session: AsyncSession,
    *,
    name: str,
    system_prompt: str,
    description: str | None = None,
    bot_id: str = ALL_BOTS,
) -> PromptTemplate:
    """Store the next version of (bot_id, name) as the active one; commits."""
    validate_template(system_prompt)
    await _lock(session, bot_id, name)
    await _deactivate(session, bot_id, name)
    latest = await session.scalar(
        select(func.max(PromptTemplate.version)).where(PromptTemplate.bot_id == bot_id, PromptTemplate.name == name)
    )
    template = PromptTemplate(
        bot_id=bot_id,
        name=name,
        version=(latest or 0) + 1,
        system_prompt=system_prompt,
        description=description,
        is_active=True,
    )
    session.add(template)
    await session.commit()
    return template


async def activate(session: AsyncSession, template_id: int) -> PromptTemplate | None:
    """Make this version the active one of its (bot, name); None if it does not exist. Commits."""
    template = await session.get(PromptTemplate, template_id)
    if template is None:
        return None
    await _lock(session, template.bot_id, template.name)
    await _deactivate(session, template.bot_id, template.name)
    await session.execute(update(PromptTemplate).where(PromptTemplate.id == template_id).values(is_active=True))
    await session.commit()
    await session.refresh(template)
    return template


async def _lock(session: AsyncSession, bot_id: str, name: str) -> None:
    """Serialise writers of one (bot, name) until commit, so versions and the active flag never race.

    PostgreSQL takes an advisory lock; SQLite needs none because the UPDATE that follows takes the
    database's single write lock before anything is read.
    """
    if session.bind.dialect.name == "postgresql":
        key = func.hashtext(f"prompttemplate:{bot_id}:{name}")
        await session.execute(select(func.pg_advisory_xact_lock(key)))


async def _deactivate(session: AsyncSession, bot_id: str, name: str) -> None:
    await session.execute(
        update(PromptTemplate)
        .where(PromptTemplate.bot_id == bot_id, PromptTemplate.name == name, PromptTemplate.is_active)
        .values(is_active=False)
        .execution_options(synchronize_session=False)
    )


async def list_templates(
    session: AsyncSession, *, all_versions: bool = False, bot_id: str | None = None
) -> list[PromptTemplate]:
    """Active templates (or every version), by bot, name and newest version first."""
    query = select(PromptTemplate)
    if not all_versions:
        query = query.where(PromptTemplate.is_active)
    if bot_id is not None:
        query = query.where(PromptTemplate.bot_id == bot_id)
    query = query.order_by(PromptTemplate.bot_id, PromptTemplate.name, PromptTemplate.version.desc())
    return list(await session.scalars(query))


async def versions(session: AsyncSession, name: str, *, bot_id: str | None = None) -> list[PromptTemplate]:
    """Every version of `name` (for one bot, or all bots), newest first."""
    query = select(PromptTemplate).where(PromptTemplate.name == name)
    if bot_id is not None:
        query = query.where(PromptTemplate.bot_id == bot_id)
    query = query.order_by(PromptTemplate.bot_id, PromptTemplate.version.desc())
    return list(await session.scalars(query))


async def resolve_template(session: AsyncSession, *, bot_id: str, block_name: str | None) -> PromptTemplate:
    """The template answering a message: block-named (bot, then all bots), else the bot's default, else ours."""
    names = [DEFAULT_NAME] if not block_name else [block_name, DEFAULT_NAME]
    rows = await session.scalars(
        select(PromptTemplate).where(
            PromptTemplate.is_active,
            PromptTemplate.name.in_(names),
            or_(PromptTemplate.bot_id == bot_id, PromptTemplate.bot_id == ALL_BOTS),
        )
    )
    found = {(t.name, t.bot_id): t for t in rows}
    for key in [(n, b) for n in names for b in (bot_id, ALL_BOTS)]:
        if key in found:
            return found[key]
    raise PermanentError("no active 'default' prompt template; run the migrations")
