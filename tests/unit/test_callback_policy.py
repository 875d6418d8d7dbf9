"""Callback URL policy: the allow-list alone with DEBUG=false; the local stand-in too with DEBUG=true."""

import pytest

from app.config import Settings
from app.services.callback_policy import callback_problem

KAKAO = "https://bot-api.kakao.com/v1/bots/b/callback/token-0123"
STAND_INS = [
    "http://localhost:8000/test-callback",
    "http://127.0.0.1:8000/test-callback/abc123",
    "http://[::1]:9000/test-callback",
    "https://localhost/test-callback",
]
NEVER = [
    "http://localhost:8000/admin/ai-tasks",
    "http://localhost:8000/test-callbackx",
    "http://localhost:8000/test-callback/../admin",
    "http://localhost:8000/test-callback/%2e%2e/admin",
    "http://user@localhost:8000/test-callback",
    "http://localhost.evil.example/test-callback",
    "http://10.0.0.1/test-callback",
    "http://169.254.169.254/test-callback",
    "file:///test-callback",
]


def settings(**values: object) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.mark.parametrize("debug", [False, True])
def test_kakao_urls_pass_either_way(debug: bool) -> None:
    assert callback_problem(KAKAO, settings(debug=debug)) is None


@pytest.mark.parametrize("url", STAND_INS)
def test_the_stand_in_is_allowed_only_with_debug(url: str) -> None:
    assert callback_problem(url, settings(debug=True)) is None
    assert callback_problem(url, settings(debug=False)) is not None


@pytest.mark.parametrize("url", NEVER)
def test_debug_allows_nothing_else(url: str) -> None:
    assert callback_problem(url, settings(debug=True)) is not None


def test_debug_false_is_exactly_the_allow_list() -> None:
    local = settings(kakao_callback_allow_http=True, kakao_callback_allowed_hosts="127.0.0.1")
    assert callback_problem("http://127.0.0.1:8000/anything", local) is None
    assert callback_problem("http://localhost:8000/test-callback", local) == "host not allowed"
