"""The callback URL SSRF guard and log redaction."""

import httpx
import pytest

from app.kakao.callback_url import check_callback_url, redact_callback_url

KAKAO = ["bot-api.kakao.com"]
GOOD = "https://bot-api.kakao.com/v1/bots/65a1f0c2e4b0d1a2b3c4d5e6/callback/AbCdEf0123456789-fake_token"


@pytest.mark.parametrize(
    "url",
    [
        GOOD,
        "https://bot-api.kakao.com:443/v1/bots/b/callback/t",
        "HTTPS://BOT-API.KAKAO.COM/v1/bots/x",
        "https://Bot-Api.Kakao.Com/v1/bots/b/callback/t?x=1",
        "https://bot-api.kakao.com/v1/bots/b/callback/t%2Bk~=",
    ],
)
def test_good_urls_pass(url: str) -> None:
    assert check_callback_url(url, KAKAO) is None


HOSTILE = {
    "": "empty url",
    "javascript:alert(1)": "scheme not allowed",
    "file:///etc/passwd": "scheme not allowed",
    "ftp://bot-api.kakao.com/v1/bots/x": "scheme not allowed",
    "http://bot-api.kakao.com/v1/bots/x": "scheme not allowed",
    "//bot-api.kakao.com/v1/bots/x": "scheme not allowed",
    "bot-api.kakao.com/v1/bots/x": "scheme not allowed",
    "https:/bot-api.kakao.com/v1/bots/x": "host missing",
    "https:///v1/bots/x": "host missing",
    "https://:443/v1/bots/x": "host missing",
    "https://bot-api.kakao.com@evil.com/v1/bots/x": "userinfo not allowed",
    "https://user:pass@bot-api.kakao.com/v1/bots/x": "userinfo not allowed",
    "https://evil.com#@bot-api.kakao.com/v1/bots/x": "fragment not allowed",
    "https://bot-api.kakao.com/v1/bots/x#frag": "fragment not allowed",
    "https://bot-api.kakao.com.evil.com/v1/bots/x": "host not allowed",
    "https://evilbot-api.kakao.com/v1/bots/x": "host not allowed",
    "https://api.kakao.com/v1/bots/x": "host not allowed",
    "https://bot-api.kakao.com./v1/bots/x": "host not allowed",
    "https://bot-api%2ekakao.com/v1/bots/x": "host not allowed",
    "https://bot-api.kakao.com%2F@evil.com/v1/bots/x": "userinfo not allowed",
    "https://bot-api.kakao.com:443:443/v1/bots/x": "host not allowed",
    "https://127.0.0.1/v1/bots/x": "host not allowed",
    "https://[::1]/v1/bots/x": "host not allowed",
    "https://[::ffff:127.0.0.1]/v1/bots/x": "host not allowed",
    "https://2130706433/v1/bots/x": "host not allowed",
    "https://[bot-api.kakao.com]/v1/bots/x": "unparseable url",
    "https://bot-api.kakao.com:444/v1/bots/x": "port not allowed",
    "https://bot-api.kakao.com:80/v1/bots/x": "port not allowed",
    "https://bot-api.kakao.com:https/v1/bots/x": "port not allowed",
    "https://bot-api.kakao.com/": "path not allowed",
    "https://bot-api.kakao.com": "path not allowed",
    "https://bot-api.kakao.com/v1/botsx/y": "path not allowed",
    "https://bot-api.kakao.com/admin?/v1/bots/": "path not allowed",
    "https://bot-api.kakao.com?@evil.com/v1/bots/": "path not allowed",
    "https://bot-api.kakao.com/v1/bots/../../admin": "path not allowed",
    "https://bot-api.kakao.com/v1/bots/%2e%2e/%2E%2E/admin": "path not allowed",
    "https://bot-api.kakao.com\\@evil.com/v1/bots/x": "invalid characters",
    "https://evil.com\\.bot-api.kakao.com/v1/bots/x": "invalid characters",
    "https://bot-api.kakao.com/v1/bots/x y": "invalid characters",
    " https://bot-api.kakao.com/v1/bots/x": "invalid characters",
    "https://bot-api.kakao.com/v1/bots/x\n": "invalid characters",
    "https://bot-api.kakao.com\t/v1/bots/x": "invalid characters",
    "https://bot-api.kakao.com/v1/bots/x\x00": "invalid characters",
    "https://bot-api.kakao.com/v1/bots/%zz": "invalid characters",
    "https://bot-api.kakao.com/v1/bots/x|y": "invalid characters",
    "https://bot-api.kakaо.com/v1/bots/x": "invalid characters",  # Cyrillic "о"
    "https://ｂot-api.kakao.com/v1/bots/x": "invalid characters",  # full-width "ｂ"
    "https://bot-api.kakao.com/v1/bots/" + "a" * 3000: "url too long",
}


@pytest.mark.parametrize(("url", "reason"), HOSTILE.items(), ids=range(len(HOSTILE)))
def test_hostile_urls_are_rejected(url: str, reason: str) -> None:
    assert check_callback_url(url, KAKAO) == reason


def test_hostile_table_is_large() -> None:
    assert len(HOSTILE) >= 20


def test_empty_allow_list_rejects_everything() -> None:
    assert check_callback_url(GOOD, []) == "host not allowed"


def test_allow_list_entries_are_normalised() -> None:
    assert check_callback_url(GOOD, ["  BOT-API.KAKAO.COM. "]) is None


def test_allow_http_mode_for_local_testing() -> None:
    local = ["127.0.0.1", "::1", "localhost"]

    assert check_callback_url("http://127.0.0.1:8123/test-callback", local, allow_http=True) is None
    assert check_callback_url("http://[::1]:8123/cb", local, allow_http=True) is None
    assert check_callback_url("http://localhost/anything?x=1", local, allow_http=True) is None
    assert check_callback_url("http://127.0.0.1:8123/test-callback", local) == "scheme not allowed"
    assert check_callback_url("http://127.0.0.2:8123/cb", local, allow_http=True) == "host not allowed"
    assert check_callback_url("http://127.1:8123/cb", local, allow_http=True) == "host not allowed"
    assert check_callback_url("http://169.254.169.254/latest", local, allow_http=True) == "host not allowed"
    assert check_callback_url("http://user@127.0.0.1/cb", local, allow_http=True) == "userinfo not allowed"
    assert check_callback_url("http://127.0.0.1/../cb", local, allow_http=True) == "path not allowed"
    assert check_callback_url("gopher://127.0.0.1/cb", local, allow_http=True) == "scheme not allowed"


@pytest.mark.parametrize(
    "url",
    [
        GOOD,
        "https://bot-api.kakao.com/v1/bots/b/callback/t%2Bk~=?a=%41&b=c+d",
        "https://bot-api.kakao.com:443/v1/bots/x",
    ],
)
def test_accepted_urls_reach_the_wire_unchanged(url: str) -> None:
    # The guarantee send_callback relies on: httpx does not rewrite the target of an accepted URL.
    assert check_callback_url(url, KAKAO) is None
    target = url.split("bot-api.kakao.com", 1)[1].removeprefix(":443")
    assert httpx.URL(url).raw_path == target.encode()


def test_redaction_hides_the_token() -> None:
    assert redact_callback_url(GOOD) == "https://bot-api.kakao.com/v1/bots/65a1f0c2e4b0d1a2b3c4d5e6/callback/***"


@pytest.mark.parametrize(
    ("url", "redacted"),
    [
        (
            "https://bot-api.kakao.com/v1/bots/b/callback/SECRET?k=SECRET",
            "https://bot-api.kakao.com/v1/bots/b/callback/***?***",
        ),
        ("https://bot-api.kakao.com/v1/bots/b/CALLBACK/SECRET", "https://bot-api.kakao.com/v1/bots/b/CALLBACK/***"),
        (
            "https://user:SECRET@bot-api.kakao.com/v1/bots/b/callback/SECRET",
            "https://bot-api.kakao.com/v1/bots/b/callback/***",
        ),
        ("http://127.0.0.1:8123/test-callback/SECRET", "http://127.0.0.1:8123/***"),
        ("http://[::1]:8123/SECRET", "http://[::1]:8123/***"),
        (
            "https://bot-api.kakao.com/v1/bots/b/callback/SECRET#SECRET",
            "https://bot-api.kakao.com/v1/bots/b/callback/***",
        ),
        ("https://bot-api.kakao.com", "https://bot-api.kakao.com"),
        ("SECRET", "***"),
        ("", "***"),
        ("https://[SECRET/x", "***"),
        ("https://bot-api.kakao.com:99999/SECRET", "***"),
    ],
)
def test_redaction_never_contains_the_secret(url: str, redacted: str) -> None:
    assert redact_callback_url(url) == redacted
    assert "SECRET" not in redact_callback_url(url)
