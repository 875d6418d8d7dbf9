"""End to end over real HTTP: Kakao's request -> /skill (uvicorn) -> worker -> OpenAI-compatible fake
-> Kakao callback receiver, on both databases."""

import copy
import json
from pathlib import Path

import httpx
from sqlalchemy import select

from app.kakao import SkillResponse
from app.main import create_app
from app.models import (
    AIProcessingTask,
    CallbackStatus,
    Message,
    PromptLog,
    Role,
    TaskStatus,
)
from app.services.pipeline import build_pipeline
from tests.conftest import FIXTURES, make_settings
from tests.fake_services import FAKE_MODEL, FakeServices, answer_for, serve
from tests.queue_helpers import eventually
from worker.runtime import Worker


async def test_kakao_request_is_answered_by_the_llm_through_the_callback(database_url: str, tmp_path: Path) -> None:
    fakes = FakeServices()
    request = json.loads((FIXTURES / "skill_request_callback.json").read_text())
    bot_id = request["bot"]["id"]
    async with serve(fakes.app) as fake_url:
        settings = make_settings(
            database_url,
            chroma_path=str(tmp_path / "chroma"),
            openai_api_key="sk-e2e-test-key-0000",
            openai_base_url=f"{fake_url}/v1",
            kakao_callback_allow_http=True,
            kakao_callback_allowed_hosts="127.0.0.1",
            worker_poll_seconds=0.2,
        )
        app = create_app(settings)
        pipeline = build_pipeline(settings, app.state.db)
        async with (
            serve(app) as api_url,
            Worker(settings, app.state.db, pipeline, wakeup=app.state.wakeup),
            httpx.AsyncClient(base_url=api_url, timeout=10) as kakao,
        ):
            for turn, utterance in enumerate([request["userRequest"]["utterance"], "보증금은 얼마가 적당해?"], 1):
                body = copy.deepcopy(request)
                body["userRequest"]["utterance"] = utterance
                body["userRequest"]["callbackUrl"] = f"{fake_url}/v1/bots/{bot_id}/callback/token-{turn}"
                ack = (await kakao.post("/skill", json=body)).json()
                assert ack["useCallback"] is True and ack["version"] == "2.0"

                async def answered(count: int = turn) -> bool:
                    return len(fakes.callbacks) == count

                await eventually(answered, timeout=15)
        await pipeline.aclose()

    first_question, second_question = request["userRequest"]["utterance"], "보증금은 얼마가 적당해?"
    assert [token for token, _ in fakes.callbacks] == ["token-1", "token-2"]
    for (_, callback), question in zip(fakes.callbacks, [first_question, second_question], strict=True):
        assert "useCallback" not in callback
        response = SkillResponse.model_validate(callback)
        assert response.version == "2.0" and response.template is not None
        assert response.template.outputs[0].simple_text.text == answer_for(question)  # type: ignore[union-attr]

    first, second = (r["messages"] for r in fakes.llm_requests)
    assert first[0]["role"] == "system" and first[1:] == [{"role": "user", "content": first_question}]
    assert second[1:] == [
        {"role": "user", "content": first_question},
        {"role": "assistant", "content": answer_for(first_question)},
        {"role": "user", "content": second_question},
    ]

    async with app.state.db.sessions() as session:
        messages = (await session.execute(select(Message).order_by(Message.id))).scalars().all()
        logs = (await session.execute(select(PromptLog).order_by(PromptLog.msg_id))).scalars().all()
        tasks = (await session.execute(select(AIProcessingTask))).scalars().all()
    assert [(m.role, m.text) for m in messages] == [
        (Role.USER, first_question), (Role.ASSISTANT, answer_for(first_question)),
        (Role.USER, second_question), (Role.ASSISTANT, answer_for(second_question)),
    ]
    assert [log.msg_id for log in logs] == [messages[1].id, messages[3].id]
    assert [json.loads(log.rendered_prompt) for log in logs] == [first, second]
    assert {(log.model, log.template_name, log.input_tokens, log.output_tokens) for log in logs} == {
        (FAKE_MODEL, "default", 50, 20)
    }
    assert {(t.status, t.callback_status) for t in tasks} == {(TaskStatus.COMPLETED, CallbackStatus.SENT)}
    await app.state.db.dispose()
