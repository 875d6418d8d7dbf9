"""Who may call what, read from the app's own OpenAPI schema so a new endpoint cannot slip through unprotected.

Every admin, knowledge and conversation endpoint refuses requests without the admin token (401), and all of
them are closed (503) when no ADMIN_TOKEN is configured; the chat API takes only its own keys (the admin token
is not one); only a short list of paths is public; the dev endpoints exist only with DEBUG=true.
"""

import re
import uuid

import httpx
import pytest
from fastapi import FastAPI

from app.config import Settings
from app.main import create_app
from tests.conftest import ADMIN_TOKEN

PUBLIC = {
    ("GET", "/health"),
    ("POST", "/skill"),  # guarded by KAKAO_SKILL_SECRET when set (test_skill.py)
    ("POST", "/welcome"),
    ("GET", "/metrics"),
    ("GET", "/user/ai-status/{task_id}"),  # the random task id is the capability
}
# The chat API: an API key from /admin/api-keys, answered in OpenAI's error shape.
KEYED = {
    ("GET", "/v1/models"),
    ("GET", "/v1/models/{model}"),
    ("GET", "/api/models"),
    ("POST", "/v1/chat/completions"),
    ("POST", "/api/chat/completions"),
    ("POST", "/api/chat/stream"),
    ("POST", "/v1/audio/transcriptions"),
    ("POST", "/v1/audio/speech"),
}
DEV = {
    ("POST", "/test-skill"),
    ("POST", "/test-callback/{callback_id}"),
    ("GET", "/test-callback"),
    ("GET", "/test-callback/{callback_id}"),
    ("POST", "/test-name-extraction"),
}
BAD_CREDENTIALS: list[dict[str, str | bytes]] = [
    {},
    {"Authorization": ""},
    {"Authorization": "Bearer"},
    {"Authorization": "Bearer "},
    {"Authorization": "Bearer wrong-token"},
    {"Authorization": ADMIN_TOKEN},  # no scheme
    {"Authorization": f"Basic {ADMIN_TOKEN}"},
    {"Authorization": f"Bearer {ADMIN_TOKEN}x"},
    {"Authorization": f"Bearer {ADMIN_TOKEN[:-1]}"},
    {"Authorization": f"Bearer {ADMIN_TOKEN.upper()}"},
    {"Authorization": "Bearer 관리자".encode()},  # non-ASCII bytes
    {"X-Admin-Token": ADMIN_TOKEN},
]


def operations(app: FastAPI) -> set[tuple[str, str]]:
    """(method, path template) of every documented endpoint (everything but /docs, /redoc, /openapi.json)."""
    return {(method.upper(), path) for path, item in app.openapi()["paths"].items() for method in item}


def admin_operations(app: FastAPI) -> list[tuple[str, str]]:
    return sorted(operations(app) - PUBLIC - KEYED)


def concrete(path: str) -> str:
    """A request path for a route template: ids that parse but match nothing."""
    numeric = {"prompt_id", "conversation_id"}
    return re.sub(r"\{(\w+)\}", lambda m: "1" if m.group(1) in numeric else str(uuid.uuid4()), path)


def test_only_a_short_list_of_endpoints_is_public(app: FastAPI) -> None:
    admin = admin_operations(app)
    assert PUBLIC <= operations(app) and KEYED <= operations(app)
    assert all(path.startswith(("/admin", "/api/knowledge", "/user/conversation")) for _, path in admin), admin
    assert len(admin) >= 13


@pytest.mark.parametrize("headers", BAD_CREDENTIALS, ids=range(len(BAD_CREDENTIALS)))
async def test_admin_endpoints_refuse_requests_without_the_token(app: FastAPI, headers: dict[str, str | bytes]) -> None:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        for method, path in admin_operations(app):
            response = await client.request(method, concrete(path), headers=headers, json={})
            assert response.status_code == 401, (method, path, response.status_code)
            assert response.headers["www-authenticate"] == "Bearer"
            assert response.json() == {"detail": "admin token missing or invalid", "code": "unauthorized"}
    await app.state.db.dispose()


@pytest.mark.parametrize("headers", [*BAD_CREDENTIALS, {"Authorization": f"Bearer {ADMIN_TOKEN}"}])
async def test_chat_api_endpoints_refuse_requests_without_an_api_key(app: FastAPI, headers: dict[str, str | bytes]) -> None:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        for method, path in sorted(KEYED):
            response = await client.request(method, concrete(path), headers=headers, json={})
            assert response.status_code == 401, (method, path, response.status_code)
            assert response.headers["www-authenticate"] == "Bearer"
            assert response.json()["error"]["code"] == "invalid_api_key", (method, path)
    await app.state.db.dispose()


async def test_admin_endpoints_are_closed_without_a_configured_token(settings: Settings) -> None:
    app = create_app(settings.model_copy(update={"admin_token": None}))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        for method, path in admin_operations(app):
            for headers in ({}, {"Authorization": "Bearer "}, {"Authorization": "Bearer None"}):
                response = await client.request(method, concrete(path), headers=headers, json={})
                assert response.status_code == 503, (method, path, headers, response.status_code)
                assert response.json() == {"detail": "ADMIN_TOKEN is not configured", "code": "admin_disabled"}
    await app.state.db.dispose()


async def test_dev_endpoints_exist_only_with_debug(settings: Settings) -> None:
    production = create_app(settings)
    debug = create_app(settings.model_copy(update={"debug": True}))
    assert not DEV & operations(production)
    assert DEV <= operations(debug)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=production), base_url="http://t") as client:
        for method, path in DEV:
            response = await client.request(method, concrete(path), json={"utterance": "x", "sentence": "x"})
            assert response.status_code in (404, 405), (method, path)
    await production.state.db.dispose()
    await debug.state.db.dispose()
