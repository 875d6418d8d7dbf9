"""text_reply and callback_ack."""

import json
from pathlib import Path

from app.kakao.builders import EMPTY_ANSWER_TEXT, callback_ack, text_reply
from app.kakao.format import CUT_MARKER
from app.kakao.response import QuickReply

FIXTURES = Path(__file__).parents[2] / "fixtures" / "kakao"


def test_callback_ack_shape() -> None:
    assert callback_ack("잠시만요").to_dict() == {"version": "2.0", "useCallback": True, "data": {"text": "잠시만요"}}


def test_callback_ack_matches_the_official_example() -> None:
    fixture = json.loads((FIXTURES / "callback_ack_response.json").read_text(encoding="utf-8"))

    assert callback_ack(fixture["data"]["text"]).to_dict() == fixture


def test_text_reply_strips_markdown() -> None:
    assert text_reply("**안녕하세요!** 무엇을 도와드릴까요?").to_dict() == {
        "version": "2.0",
        "template": {"outputs": [{"simpleText": {"text": "안녕하세요! 무엇을 도와드릴까요?"}}]},
    }


def test_long_text_reply_stays_within_limits() -> None:
    outputs = text_reply("긴 답변입니다. " * 500).to_dict()["template"]["outputs"]

    assert len(outputs) == 3
    assert all(len(o["simpleText"]["text"]) <= 1000 for o in outputs)
    assert outputs[-1]["simpleText"]["text"].endswith(CUT_MARKER)


def test_empty_text_gets_a_fallback_bubble() -> None:
    outputs = text_reply("  \n ").to_dict()["template"]["outputs"]

    assert outputs == [{"simpleText": {"text": EMPTY_ANSWER_TEXT}}]


def test_string_quick_replies_become_message_replies() -> None:
    long_text = "아주아주 긴 빠른 답장 문구입니다"
    block = QuickReply(label="처음으로", action="block", block_id="65a1f0c2e4b0d1a2b3c4d5f3")

    replies = text_reply("답변", ["답변 확인", long_text, "   ", block]).to_dict()["template"]["quickReplies"]

    assert replies[0] == {"label": "답변 확인", "action": "message", "messageText": "답변 확인"}
    assert len(replies[1]["label"]) <= 14
    assert replies[1]["label"].endswith("…")
    assert replies[1]["messageText"] == long_text
    assert replies[2] == {"label": "처음으로", "action": "block", "blockId": "65a1f0c2e4b0d1a2b3c4d5f3"}
    assert len(replies) == 3


def test_label_truncation_does_not_leave_a_dangling_joiner() -> None:
    family = "\U0001f468\u200d\U0001f469\u200d\U0001f467"
    label = text_reply("답변", ["가족 이모지 " + family * 3]).to_dict()["template"]["quickReplies"][0]["label"]

    assert len(label) <= 14
    assert not label.removesuffix("…").endswith("\u200d")


def test_no_quick_replies_key_without_quick_replies() -> None:
    assert "quickReplies" not in text_reply("답변", []).to_dict()["template"]
