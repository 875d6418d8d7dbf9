"""SkillPayload parsing: every sample request parses, tolerantly."""

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from app.kakao.payload import DEFAULT_BOT_CONTEXT, MAX_UTTERANCE_CHARS, SkillPayload

FIXTURES = Path(__file__).parents[2] / "fixtures" / "kakao"
REQUEST_FIXTURES = sorted(FIXTURES.glob("skill_request_*.json"))


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / name).read_text(encoding="utf-8"))
    return data


@pytest.mark.parametrize("path", REQUEST_FIXTURES, ids=lambda p: p.stem)
def test_every_request_fixture_parses(path: Path) -> None:
    payload = SkillPayload.model_validate_json(path.read_text(encoding="utf-8"))

    assert payload.bot_key == "65a1f0c2e4b0d1a2b3c4d5e6"
    assert payload.user_key.startswith("a3f9c1d2")
    assert payload.utterance


def test_request_fixtures_exist() -> None:
    assert len(REQUEST_FIXTURES) >= 5


def test_callback_request_exposes_url_and_block() -> None:
    payload = SkillPayload.model_validate(load("skill_request_callback.json"))

    assert payload.user_request.callback_url is not None
    assert payload.user_request.callback_url.startswith("https://bot-api.kakao.com/v1/bots/")
    assert payload.block_name == "폴백 블록"
    assert payload.user_request.user.properties["isFriend"] is True


def test_bot_test_console_request_has_no_callback_and_lang_kr() -> None:
    payload = SkillPayload.model_validate(load("skill_request_bottest.json"))

    assert payload.user_request.callback_url is None
    assert payload.user_request.lang == "kr"
    assert payload.user_request.params["surface"] == "BuilderBotTest"


def test_params_and_flow_are_kept() -> None:
    params = SkillPayload.model_validate(load("skill_request_params.json"))
    flow = SkillPayload.model_validate(load("skill_request_quickreply_flow.json"))

    assert params.action is not None
    assert params.action.params["sys_location"] == "강남"
    assert params.action.detail_params["sys_number"]["origin"] == "1"
    assert flow.action is not None and flow.action.client_extra == {"retry_of": "req-20240101-0001"}
    assert flow.flow is not None and flow.flow.trigger is not None
    assert flow.flow.trigger.type == "QUICKREPLY_BUTTON_BLOCK"
    assert flow.flow.trigger.referrer_block is not None
    assert flow.flow.trigger.referrer_block.name == "폴백 블록"


def test_bot_key_strips_development_suffix() -> None:
    data = load("skill_request_basic.json")
    data["bot"]["id"] = "65a1f0c2e4b0d1a2b3c4d5e6!"

    assert SkillPayload.model_validate(data).bot_key == "65a1f0c2e4b0d1a2b3c4d5e6"


def test_null_client_extra_and_params_are_accepted() -> None:
    data = load("skill_request_basic.json")
    data["action"]["clientExtra"] = None
    data["action"]["params"] = None
    data["userRequest"]["params"] = None

    payload = SkillPayload.model_validate(data)

    assert payload.action is not None
    assert payload.action.client_extra is None
    assert payload.action.params == {}
    assert payload.user_request.params == {}


def test_unknown_keys_are_ignored_everywhere() -> None:
    data = load("skill_request_basic.json")
    data["brandNew"] = {"x": 1}
    data["userRequest"]["somethingElse"] = [1, 2]
    data["userRequest"]["user"]["newField"] = "y"
    data["bot"]["extra"] = True
    data["userRequest"]["lang"] = "en"

    payload = SkillPayload.model_validate(data)

    assert payload.user_request.lang == "en"
    assert "brandNew" not in payload.model_dump()


def test_minimal_request_parses() -> None:
    payload = SkillPayload.model_validate(
        {"bot": {"id": "b"}, "userRequest": {"utterance": "안녕", "user": {"id": "u"}}}
    )

    assert (payload.bot_key, payload.user_key, payload.utterance) == ("b", "u", "안녕")
    assert payload.block_name is None


def test_block_name_falls_back_to_intent() -> None:
    data = load("skill_request_basic.json")
    del data["userRequest"]["block"]

    assert SkillPayload.model_validate(data).block_name == "폴백 블록"


def test_populate_by_field_name() -> None:
    payload = SkillPayload.model_validate(
        {"bot": {"id": "b"}, "user_request": {"utterance": "x", "user": {"id": "u"}, "callback_url": "https://h/"}}
    )

    assert payload.user_request.callback_url == "https://h/"


@pytest.mark.parametrize("bot", [{}, {"bot": None}], ids=["absent", "null"])
def test_missing_bot_takes_the_default_from_the_context(bot: dict[str, Any]) -> None:
    data = {"userRequest": {"utterance": "안녕", "user": {"id": "u"}}, **bot}

    payload = SkillPayload.model_validate(data, context={DEFAULT_BOT_CONTEXT: "default"})

    assert payload.bot_key == "default"
    with pytest.raises(ValidationError):
        SkillPayload.model_validate(data)


def test_a_sent_bot_wins_over_the_default() -> None:
    payload = SkillPayload.model_validate(load("skill_request_basic.json"), context={DEFAULT_BOT_CONTEXT: "default"})

    assert payload.bot_key == "65a1f0c2e4b0d1a2b3c4d5e6"


def test_top_level_callback_url_is_used_only_without_a_nested_one() -> None:
    data = load("skill_request_basic.json")
    data["callbackUrl"] = "https://top/"
    assert SkillPayload.model_validate(data).requested_callback_url == "https://top/"

    data["userRequest"]["callbackUrl"] = "https://nested/"
    assert SkillPayload.model_validate(data).requested_callback_url == "https://nested/"


@pytest.mark.parametrize(
    "mutate",
    [
        pytest.param(
            lambda d: d["userRequest"].update(utterance="가" * (MAX_UTTERANCE_CHARS + 1)), id="long-utterance"
        ),
        pytest.param(lambda d: d["userRequest"].pop("utterance"), id="no-utterance"),
        pytest.param(lambda d: d["userRequest"]["user"].update(id="u" * 71), id="long-user-id"),
        pytest.param(lambda d: d["userRequest"]["user"].update(id=""), id="empty-user-id"),
        pytest.param(lambda d: d.pop("bot"), id="no-bot"),
        pytest.param(lambda d: d["userRequest"].pop("user"), id="no-user"),
    ],
)
def test_invalid_requests_fail(mutate: Any) -> None:
    data = load("skill_request_basic.json")
    mutate(data)

    with pytest.raises(ValidationError):
        SkillPayload.model_validate(data)


def test_utterance_at_the_limit_is_fine() -> None:
    data = load("skill_request_basic.json")
    data["userRequest"]["utterance"] = "가" * MAX_UTTERANCE_CHARS

    assert len(SkillPayload.model_validate(data).utterance) == MAX_UTTERANCE_CHARS
