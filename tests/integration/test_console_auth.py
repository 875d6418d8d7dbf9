"""Console access: admin-token login, the session cookie, CSRF, and no console without ADMIN_TOKEN."""

import httpx
import pytest
from fastapi import FastAPI
from itsdangerous import timed

from app.config import Settings
from app.main import create_app
from tests.conftest import ADMIN_TOKEN
from tests.console_helpers import HTML, log_in

PAGES = [
    "/console", "/console/dashboard/panel", "/console/tasks", "/console/conversations", "/console/prompts",
    "/console/knowledge", "/console/usage", "/console/api-keys", "/console/simulator", "/console/chat",
]
POSTS = [
    "/console/logout", "/console/prompts", "/console/prompts/1/activate", "/console/prompts/check",
    "/console/knowledge/text", "/console/usage/limits", "/console/api-keys", "/console/api-keys/1/revoke", "/console/simulator/send",
    "/console/tasks/00000000-0000-0000-0000-000000000000/retry", "/console/chat/completions",
]


async def test_without_admin_token_the_console_only_says_how_to_set_it(settings: Settings) -> None:
    app = create_app(settings.model_copy(update={"admin_token": None}))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as client:
        for path in [*PAGES, "/console/login"]:
            response = await client.get(path, headers=HTML)
            assert response.status_code == 503
            assert "ADMIN_TOKEN" in response.text and "관리 콘솔이 꺼져 있어요" in response.text
            assert "password" not in response.text and "로그아웃" not in response.text
        refused = await client.post("/console/login", data={"token": "anything"})
        assert refused.status_code == 503 and "set-cookie" not in refused.headers
    await app.state.db.dispose()


async def test_login_sets_an_httponly_strict_expiring_cookie(client: httpx.AsyncClient, settings: Settings) -> None:
    page = await client.get("/console/login")
    assert page.status_code == 200 and 'lang="ko"' in page.text and 'type="password"' in page.text
    response = await client.post("/console/login", data={"token": ADMIN_TOKEN, "next": "/console/prompts"})
    assert response.status_code == 303 and response.headers["location"] == "/console/prompts"
    cookie = response.headers["set-cookie"]
    assert cookie.startswith("console_session=")
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/console" in cookie
    assert f"Max-Age={settings.console_session_ttl_seconds}" in cookie
    assert "Secure" not in cookie  # plain http (a local run); behind https it is set, see below
    assert (await client.get("/console/tasks")).status_code == 200


async def test_the_cookie_is_secure_behind_https(app: FastAPI) -> None:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://console.example") as client:
        response = await client.post("/console/login", data={"token": ADMIN_TOKEN})
    assert "Secure" in response.headers["set-cookie"]


async def test_a_wrong_token_is_refused_with_a_message(client: httpx.AsyncClient) -> None:
    for token in ["wrong", ADMIN_TOKEN + "x", "토큰", ""]:
        response = await client.post("/console/login", data={"token": token})
        assert response.status_code in (401, 422)
        assert "set-cookie" not in response.headers
    wrong = await client.post("/console/login", data={"token": "wrong"})
    assert "관리자 토큰이 올바르지 않습니다." in wrong.text
    assert (await client.get("/console", headers=HTML)).status_code == 303


async def test_every_page_and_data_call_is_closed_without_a_session(client: httpx.AsyncClient) -> None:
    for path in PAGES:
        page = await client.get(path, headers=HTML)
        assert page.status_code == 303 and page.headers["location"].startswith("/console/login"), path
        data = await client.get(path)
        assert data.status_code == 401 and data.json()["code"] == "unauthorized", path
    assert (await client.get("/console/simulator/callbacks/" + "a" * 32)).status_code == 401
    for path in POSTS:
        assert (await client.post(path, data={"csrf_token": "x"})).status_code == 401, path


async def test_logout_ends_the_session(client: httpx.AsyncClient) -> None:
    csrf = await log_in(client)
    response = await client.post("/console/logout", data={"csrf_token": csrf})
    assert response.status_code == 303 and response.headers["location"] == "/console/login"
    assert 'console_session=""' in response.headers["set-cookie"] and "Max-Age=0" in response.headers["set-cookie"]
    assert (await client.get("/console/tasks", headers=HTML)).status_code == 303


async def test_an_expired_or_tampered_session_is_refused(
    client: httpx.AsyncClient, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    await log_in(client)
    value = client.cookies["console_session"]
    client.cookies.set("console_session", value[:-2] + ("AA" if not value.endswith("AA") else "BB"), path="/console")
    assert (await client.get("/console/tasks", headers=HTML)).status_code == 303

    client.cookies.set("console_session", value, path="/console")
    assert (await client.get("/console/tasks")).status_code == 200
    later = timed.time.time() + settings.console_session_ttl_seconds + 5
    monkeypatch.setattr(timed.time, "time", lambda: later)
    assert (await client.get("/console/tasks")).status_code == 401


async def test_a_session_ends_when_the_admin_token_changes(settings: Settings) -> None:
    first = create_app(settings)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=first), base_url="http://testserver") as client:
        await log_in(client)
        cookie = client.cookies["console_session"]
    second = create_app(settings.model_copy(update={"admin_token": "another-token"}))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=second), base_url="http://testserver") as client:
        client.cookies.set("console_session", cookie, path="/console")
        assert (await client.get("/console/tasks")).status_code == 401
    for app in (first, second):
        await app.state.db.dispose()


async def test_state_changes_need_the_csrf_token_and_the_same_origin(client: httpx.AsyncClient) -> None:
    csrf = await log_in(client)
    form = {"name": "default", "system_prompt": "안녕하세요 {user_name}님"}
    missing = await client.post("/console/prompts", data=form)
    assert missing.status_code == 403 and missing.json()["code"] == "csrf_failed"
    wrong = await client.post("/console/prompts", data={**form, "csrf_token": csrf + "x"})
    assert wrong.status_code == 403
    cross = await client.post(
        "/console/prompts", data={**form, "csrf_token": csrf}, headers={"origin": "https://evil.example"}
    )
    assert cross.status_code == 403
    json_call = await client.post(
        "/console/simulator/send", json={"bot_id": "b", "user_id": "u", "utterance": "안녕"}
    )
    assert json_call.status_code == 403
    ok = await client.post(
        "/console/prompts", data={**form, "csrf_token": csrf}, headers={"origin": "http://testserver"}
    )
    assert ok.status_code == 303
    cross_login = await client.post(
        "/console/login", data={"token": ADMIN_TOKEN}, headers={"origin": "https://evil.example"}
    )
    assert cross_login.status_code == 403


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/console", "/console//evil", "/admin"])
async def test_login_never_sends_the_browser_out_of_the_console(client: httpx.AsyncClient, target: str) -> None:
    response = await client.post("/console/login", data={"token": ADMIN_TOKEN, "next": target})
    assert response.headers["location"] == "/console"


async def test_console_pages_load_nothing_from_elsewhere(client: httpx.AsyncClient) -> None:
    await log_in(client)
    for path in PAGES:
        response = await client.get(path)
        assert "default-src 'self'" in response.headers["content-security-policy"], path
        assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
        assert "http://" not in response.text.replace("http://testserver", "") and "https://" not in response.text
    for asset in ["console.css", "console.js", "favicon.svg"]:
        assert (await client.get(f"/console/static/{asset}")).status_code == 200
    assert not any(p.startswith("/console") for p in (await client.get("/openapi.json")).json()["paths"])
