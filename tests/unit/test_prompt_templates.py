"""Template placeholder rules and rendering (no database)."""

import re
from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.services.prompts import (
    TEMPLATE_PATTERN,
    VARIABLES,
    PromptVariables,
    TemplateError,
    render_template,
    validate_template,
)


@pytest.mark.parametrize(
    "text",
    [
        "plain text without placeholders",
        "당신은 {bot_name}입니다. 오늘은 {today}. 고객: {user_name}\n{summary}\n{context}\n질문: {utterance}",
        'JSON 예시: {{"answer": "..."}} 그리고 {user_name}',
        "{{user_name}} is shown literally",
        "",
    ],
)
def test_valid_templates(text: str) -> None:
    validate_template(text)


@pytest.mark.parametrize(
    ("text", "placeholder"),
    [
        ("안녕하세요 {username}님", "{username}"),
        ("{ user_name }", "{ user_name }"),
        ("{user_name:>20}", "{user_name:>20}"),
        ("{user_name!r}", "{user_name!r}"),
        ("{today:{context}}", "{today:{context}}"),
        ("{}", "{}"),
        ("{0}", "{0}"),
        ("{user_name.upper}", "{user_name.upper}"),
        ("{context[0]}", "{context[0]}"),
        ("{__class__}", "{__class__}"),
    ],
)
def test_invalid_placeholders_are_named(text: str, placeholder: str) -> None:
    with pytest.raises(TemplateError) as info:
        validate_template(text)
    assert info.value.placeholder == placeholder
    assert placeholder in str(info.value)


@pytest.mark.parametrize("text", ["닫는 괄호만 }", "여는 괄호만 {user_name", "{", "a } b { c"])
def test_unbalanced_braces(text: str) -> None:
    with pytest.raises(TemplateError, match="unbalanced braces"):
        validate_template(text)


def test_unknown_name_message_lists_allowed_variables() -> None:
    with pytest.raises(TemplateError) as info:
        validate_template("{name}")
    assert "{user_name}" in str(info.value) and "{utterance}" in str(info.value)


def test_render_fills_every_variable() -> None:
    text = "{bot_name}|{today}|{user_name}|{summary}|{context}|{utterance}|{{literal}}"
    variables = PromptVariables(
        user_name="민수",
        bot_name="행복쇼핑",
        today=date(2026, 11, 21),
        summary="배송 문의를 자주 함",
        context="[1] 배송은 2~3일",
        utterance="언제 와요?",
    )
    assert render_template(text, variables) == (
        "행복쇼핑|2026년 11월 21일 (토)|민수|배송 문의를 자주 함|[1] 배송은 2~3일|언제 와요?|{literal}"
    )


def test_render_defaults_for_missing_values() -> None:
    rendered = render_template("{user_name}님|{summary}|{context}", PromptVariables(user_name="  "))
    assert rendered == "고객님|(없음)|(없음)"


def test_values_are_not_parsed_again() -> None:
    variables = PromptVariables(utterance="{user_name} {0} {__class__} }{", user_name="민수")
    assert render_template("Q: {utterance}", variables) == "Q: {user_name} {0} {__class__} }{"


def test_render_rejects_invalid_stored_template() -> None:
    with pytest.raises(TemplateError):
        render_template("{oops}", PromptVariables())


# Templates built from the pieces that matter: braces, variable names (allowed and not), format marks, text.
_PIECES = st.sampled_from(["{", "}", "{{", "}}", ":", "!r", ".", "[0]", "x", " ", "\n", *VARIABLES, "username"])


@given(st.lists(_PIECES, max_size=12).map("".join))
def test_the_schema_pattern_accepts_exactly_the_valid_templates(text: str) -> None:
    try:
        validate_template(text)
        valid = True
    except TemplateError:
        valid = False
    assert bool(re.fullmatch(TEMPLATE_PATTERN, text)) is valid
