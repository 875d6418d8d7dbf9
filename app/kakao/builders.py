"""Ready-made skill responses: a text answer, and the callback acknowledgement."""

import unicodedata
from collections.abc import Sequence

from app.kakao.format import format_answer
from app.kakao.limits import MAX_LABEL_CHARS
from app.kakao.response import Output, QuickReply, SimpleText, SkillResponse, SkillTemplate

EMPTY_ANSWER_TEXT = "답변을 만들지 못했어요. 잠시 후 다시 질문해 주세요."
_ELLIPSIS = "…"


def _label(text: str) -> str:
    """Shorten to the label limit without leaving a dangling combining mark or joiner."""
    text = " ".join(text.split())
    if len(text) <= MAX_LABEL_CHARS:
        return text
    head = text[: MAX_LABEL_CHARS - len(_ELLIPSIS)]
    while head and unicodedata.category(head[-1]) in {"Mn", "Me", "Cf"}:
        head = head[:-1]
    return head.rstrip() + _ELLIPSIS


def _quick_replies(items: Sequence[QuickReply | str]) -> list[QuickReply]:
    """Strings become message quick replies that send the full text; blank strings are skipped."""
    return [
        item
        if isinstance(item, QuickReply)
        else QuickReply(label=_label(item), action="message", message_text=item.strip())
        for item in items
        if isinstance(item, QuickReply) or item.strip()
    ]


def text_reply(text: str, quick_replies: Sequence[QuickReply | str] | None = None) -> SkillResponse:
    """An answer as plain-text bubbles (Markdown removed, split to the limits); strings become message quick replies."""
    bubbles = format_answer(text) or [EMPTY_ANSWER_TEXT]
    template = SkillTemplate(
        outputs=[Output.of(SimpleText(text=bubble)) for bubble in bubbles],
        quick_replies=_quick_replies(quick_replies or []) or None,
    )
    return SkillResponse(template=template)


def callback_ack(text: str) -> SkillResponse:
    """The immediate reply that tells Kakao the answer will come through the callback URL."""
    return SkillResponse(use_callback=True, data={"text": text})
