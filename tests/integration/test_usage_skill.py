"""The Kakao side of budgets on both backends: `isFriend` reaches the task, and a refusal is a Kakao reply."""

import copy
import json
from pathlib import Path

import httpx
import respx
from sqlalchemy import select

from app.main import create_app
from app.models import AIProcessingTask
from app.services.pipeline import build_pipeline
from tests.conftest import FIXTURES, make_settings
from tests.pipeline_helpers import LLM_BASE_URL, LLM_URL, completion
from worker.runtime import Worker

REQUEST = json.loads((FIXTURES / "skill_request_basic.json").read_text())


def message(text: str, *, is_friend: object) -> dict[str, object]:
    body = copy.deepcopy(REQUEST)
    body["userRequest"].pop("callbackUrl", None)
    body["userRequest"]["utterance"] = text
    properties = body["userRequest"]["user"].setdefault("properties", {})
    properties.pop("isFriend", None)
    if is_friend is not None:
        properties["isFriend"] = is_friend
    return body


def reply_text(response: httpx.Response) -> str:
    assert response.status_code == 200
    return response.json()["template"]["outputs"][0]["simpleText"]["text"]


async def test_is_friend_is_stored_with_the_task(database_url: str, tmp_path: Path) -> None:
    app = create_app(make_settings(database_url, skill_sync_wait_seconds=0, chroma_path=str(tmp_path / "c")))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        for text, flag in (("하나", False), ("둘", True), ("셋", None), ("넷", "false")):
            reply_text(await client.post("/skill", json=message(text, is_friend=flag)))
        async with app.state.db.sessions() as session:
            flags = (await session.execute(
                select(AIProcessingTask.user_is_friend).order_by(AIProcessingTask.created_at)
            )).scalars().all()
    await app.state.db.dispose()
    assert flags == [False, True, None, None]  # only a JSON boolean counts


async def test_a_non_friend_past_the_limit_is_invited_to_add_the_channel(database_url: str, tmp_path: Path) -> None:
    settings = make_settings(
        database_url, openai_api_key="sk-test", openai_base_url=LLM_BASE_URL, embedding_backend="local",
        chroma_path=str(tmp_path / "c"), non_friend_monthly_token_limit=100, worker_poll_seconds=0.1,
    )
    app = create_app(settings)
    pipeline = build_pipeline(settings, app.state.db)
    with respx.mock(assert_all_called=False) as mock:
        llm = mock.post(LLM_URL).respond(200, json=completion("답변이에요.", prompt_tokens=120, completion_tokens=30))
        mock.route(host="t").pass_through()
        async with (
            Worker(settings, app.state.db, pipeline, wakeup=app.state.wakeup),
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client,
        ):
            first = reply_text(await client.post("/skill", json=message("첫 질문", is_friend=False)))
            second = reply_text(await client.post("/skill", json=message("두 번째 질문", is_friend=False)))
    await pipeline.aclose()
    await app.state.db.dispose()
    assert first.startswith("답변이에요.\n\n※ 이번 달 이용 한도를 모두 사용하셨어요. 한도는 ")  # 150 of 100 used
    assert second.startswith("채널 추가 전 이용 한도를 모두 사용하셨어요. 채널을 추가해 주시면")
    assert "월 1일 0시에 초기화돼요" in second
    assert llm.call_count == 1  # no model call for the refused message
