"""The response cache key and the in-process LRU, without a database."""

import dataclasses

import pytest

from app.services.llm import ChatMessage
from app.services.response_cache import ModelParameters, cache_key, normalise_utterance
from app.services.response_cache.lru import LRU

PARAMS = ModelParameters(model="gpt-4o", temperature=0.2, max_tokens=1000, base_url=None)
MESSAGES = [ChatMessage(role="system", content="자료=(없음)"), ChatMessage(role="user", content="배송 언제 와요?")]


@pytest.mark.parametrize(
    ("raw", "normal"),
    [(" 배송  언제 와요? ", "배송 언제 와요?"), ("배송\n언제\t와요?\n", "배송 언제 와요?"), ("\u3000환불\u00a0기간", "환불 기간")],
)
def test_normalise_trims_and_collapses_whitespace(raw: str, normal: str) -> None:
    assert normalise_utterance(raw) == normal


def test_the_same_request_has_the_same_key() -> None:
    assert cache_key("bot", PARAMS, MESSAGES) == cache_key("bot", PARAMS, list(MESSAGES))
    assert len(cache_key("bot", PARAMS, MESSAGES).digest) == 64


@pytest.mark.parametrize(
    "change",
    [
        {"model": "gpt-4o-mini"},
        {"temperature": 0.7},
        {"max_tokens": 500},
        {"base_url": "http://localhost:11434/v1"},
    ],
)
def test_every_model_parameter_is_in_the_key(change: dict[str, object]) -> None:
    changed = dataclasses.replace(PARAMS, **change)  # type: ignore[arg-type]
    assert cache_key("bot", changed, MESSAGES).digest != cache_key("bot", PARAMS, MESSAGES).digest


def test_bot_roles_and_message_boundaries_are_in_the_key() -> None:
    base = cache_key("bot", PARAMS, MESSAGES).digest
    assert cache_key("bot-2", PARAMS, MESSAGES).digest != base
    as_assistant = [MESSAGES[0], ChatMessage(role="assistant", content=MESSAGES[1].content)]
    assert cache_key("bot", PARAMS, as_assistant).digest != base
    # The same text split differently between messages is another request.
    merged = [ChatMessage(role="system", content=MESSAGES[0].content + MESSAGES[1].content)]
    moved = [ChatMessage(role="system", content="자료="), ChatMessage(role="user", content="(없음)배송 언제 와요?")]
    assert len({base, cache_key("bot", PARAMS, merged).digest, cache_key("bot", PARAMS, moved).digest}) == 3


def test_lru_evicts_the_least_recently_used() -> None:
    lru: LRU[str] = LRU(2)
    lru.put("a", "1")
    lru.put("b", "2")
    assert lru.get("a") == "1"  # now b is the oldest
    lru.put("c", "3")
    assert (lru.get("a"), lru.get("b"), lru.get("c"), len(lru)) == ("1", None, "3", 2)


def test_lru_of_zero_keeps_nothing() -> None:
    lru: LRU[str] = LRU(0)
    lru.put("a", "1")
    assert lru.get("a") is None and len(lru) == 0
