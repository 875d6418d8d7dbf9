"""The Kakao i Open Builder skill protocol: request and response models, text formatting, callback delivery.

Imports nothing else from `app`; settings arrive as function arguments.
"""

from app.kakao.builders import EMPTY_ANSWER_TEXT, callback_ack, text_reply
from app.kakao.callback import CallbackOutcome, CallbackResult, send_callback
from app.kakao.callback_url import check_callback_url, redact_callback_url
from app.kakao.format import CUT_MARKER, format_answer, split_bubbles, strip_markdown
from app.kakao.payload import MAX_UTTERANCE_CHARS, SkillPayload
from app.kakao.response import (
    BasicCard,
    Button,
    Carousel,
    ContextControl,
    ContextValue,
    ItemCard,
    ListCard,
    Output,
    QuickReply,
    SimpleImage,
    SimpleText,
    SkillResponse,
    SkillTemplate,
    TextCard,
    Thumbnail,
)

__all__ = [
    "CUT_MARKER",
    "EMPTY_ANSWER_TEXT",
    "MAX_UTTERANCE_CHARS",
    "BasicCard",
    "Button",
    "CallbackOutcome",
    "CallbackResult",
    "Carousel",
    "ContextControl",
    "ContextValue",
    "ItemCard",
    "ListCard",
    "Output",
    "QuickReply",
    "SimpleImage",
    "SimpleText",
    "SkillPayload",
    "SkillResponse",
    "SkillTemplate",
    "TextCard",
    "Thumbnail",
    "callback_ack",
    "check_callback_url",
    "format_answer",
    "redact_callback_url",
    "send_callback",
    "split_bubbles",
    "strip_markdown",
    "text_reply",
]
