"""Answer one question from the knowledge base: through the LLM when a key is set, else offline."""

from typing import Literal

from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.services import prompts
from app.services.knowledge import offline
from app.services.knowledge.base import KnowledgeBase
from app.services.knowledge.context import format_context
from app.services.knowledge.schemas import Passage
from app.services.llm import ChatMessage, LLMClient

LLM_TIMEOUT_SECONDS = 30.0


class QueryAnswer(BaseModel):
    answer: str
    mode: Literal["llm", "offline"]
    found: bool
    sources: list[Passage]


async def answer_question(
    session: AsyncSession, kb: KnowledgeBase, settings: Settings, *, bot_id: str, question: str
) -> QueryAnswer:
    """Retrieve, then answer with the bot's active template and the LLM, or quote the best passage.

    The worker's answer pipeline adds memory, usage and delivery around the same two steps.
    """
    passages = await kb.retrieve(bot_id, question)
    if not settings.openai_api_key:
        result = offline.compose(passages)
        return QueryAnswer(answer=result.text, mode="offline", found=result.found, sources=result.sources)
    template = await prompts.resolve_template(session, bot_id=bot_id, block_name=None)
    system = prompts.render_template(
        template.system_prompt, prompts.PromptVariables(context=format_context(passages), utterance=question)
    )
    llm = LLMClient(settings)
    try:
        reply = await llm.complete(
            [ChatMessage(role="system", content=system), ChatMessage(role="user", content=question)],
            timeout=LLM_TIMEOUT_SECONDS,
        )
    finally:
        await llm.aclose()
    return QueryAnswer(answer=reply.text, mode="llm", found=bool(passages), sources=passages)
