"""Dev endpoints exist only with DEBUG=true and behave like the Kakao side of a callback."""

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from app.config import Settings
from app.main import create_app
from app.models import AIProcessingTask


@pytest.fixture
def debug_app(settings: Settings) -> FastAPI:
    return create_app(
        settings.model_copy(
            update={
                "debug": True,
                "kakao_callback_allow_http": True,
                "kakao_callback_allowed_hosts": ["bot-api.kakao.com", "testserver"],
            }
        )
    )


async def test_dev_endpoints_absent_without_debug(client: httpx.AsyncClient) -> None:
    assert (await client.post("/test-skill", json={"utterance": "안녕"})).status_code == 404
    assert (await client.post("/test-callback/x", json={})).status_code == 404
    assert (await client.post("/test-name-extraction", json={"sentence": "난 민수야"})).status_code == 404
    assert "/test-skill" not in (await client.get("/openapi.json")).json()["paths"]


async def test_test_skill_runs_the_callback_flow(debug_app: FastAPI) -> None:
    transport = httpx.ASGITransport(app=debug_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        result = (await client.post("/test-skill", json={"utterance": "배송 언제 와요?"})).json()
        assert result["skill_response"] == {
            "version": "2.0",
            "useCallback": True,
            "data": {"text": "AI가 답변을 생성하고 있어요!"},
        }
        callback_id = result["callback_id"]
        async with debug_app.state.db.sessions() as session:
            task = (await session.execute(select(AIProcessingTask))).scalar_one()
        assert task.callback_url == f"http://testserver/test-callback/{callback_id}"

        assert (await client.get(f"/test-callback/{callback_id}")).status_code == 404
        first = (await client.post(task.callback_url, json={"version": "2.0"})).json()
        second = (await client.post(task.callback_url, json={"version": "2.0"})).json()
        assert first["status"] == "SUCCESS" and second["status"] == "FAIL", "a callback URL works once"
        recorded = (await client.get(f"/test-callback/{callback_id}")).json()
        assert recorded["body"] == {"version": "2.0"}
        assert [r["callback_id"] for r in (await client.get("/test-callback")).json()] == [callback_id]
    await debug_app.state.db.dispose()


async def test_test_skill_explains_a_refused_callback(settings: Settings) -> None:
    app = create_app(settings.model_copy(update={"debug": True, "skill_sync_wait_seconds": 0.05}))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as client:
        result = (await client.post("/test-skill", json={"utterance": "안녕"})).json()
    assert result["callback_id"] is None
    assert "KAKAO_CALLBACK_ALLOW_HTTP" in result["callback_note"]
    assert "useCallback" not in result["skill_response"]
    await app.state.db.dispose()


async def test_name_extraction_endpoint(debug_app: FastAPI) -> None:
    transport = httpx.ASGITransport(app=debug_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        named = await client.post("/test-name-extraction", json={"sentence": "제 이름은 김철수입니다"})
        plain = await client.post("/test-name-extraction", json={"sentence": "저는 학생이에요"})
        empty = await client.post("/test-name-extraction", json={"sentence": ""})
    assert named.json() == {"sentence": "제 이름은 김철수입니다", "name": "김철수"}
    assert plain.json()["name"] is None
    assert empty.status_code == 422
    await debug_app.state.db.dispose()


@pytest.mark.parametrize("field", ["utterance", "user_id", "bot_id"])
async def test_test_skill_refuses_what_the_skill_payload_refuses(debug_app: FastAPI, field: str) -> None:
    transport = httpx.ASGITransport(app=debug_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        response = await client.post("/test-skill", json={"utterance": "안녕", field: "a\x00b"})
    assert (response.status_code, response.json()["code"]) == (422, "invalid_input")
    await debug_app.state.db.dispose()
