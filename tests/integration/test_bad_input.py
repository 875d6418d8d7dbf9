"""Bad input on both databases: property-based fuzzing of the Kakao skill payload, and NUL characters
(which PostgreSQL text cannot hold) in every kind of field.

Whatever arrives, `/skill` never answers with a 5xx, and the database never holds a half-written request:
a user message exists only together with its task (and its conversation), exactly for the requests whose
reply says the message was taken, with the text exactly as sent.
"""

import json
import os
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from app.config import Settings
from app.main import create_app
from app.services import texts
from tests.conftest import ADMIN_TOKEN, FIXTURES

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "150"))
KAKAO_CALLBACK = "https://bot-api.kakao.com/v1/bots/65a1f0c2e4b0d1a2b3c4d5e6/callback/fuzz-token-0123"

json_leaf = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12)
json_value = st.recursive(
    json_leaf, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)
utterances = st.one_of(
    st.text(max_size=40),
    st.text(alphabet="가나다 .!?\n\t", min_size=1990, max_size=2010),
    st.sampled_from(["", "   ", "\n", "답변 확인", "답변확인", "/이름 민수", "/이름", "취소", "안녕\x00하세요",
                     "\u202e\u200b", "😀" * 50, "'; DROP TABLE message; --", "{{user_name}}", "%s%n"]),
)
user_ids = st.one_of(st.sampled_from(["user-a", "user-b", "user-c"]), st.text(max_size=80))
bot_ids = st.one_of(st.sampled_from(["bot-1", "bot-1!"]), st.text(max_size=110))
callbacks = st.one_of(
    st.sampled_from([KAKAO_CALLBACK, "http://127.0.0.1:1/v1/bots/b/callback/t", "javascript:alert(1)", ""]),
    st.text(max_size=30),
)


def _maybe(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly the well-typed value, sometimes any JSON value in its place."""
    return st.one_of(*[strategy] * 5, json_value)


def _with_extra_keys(strategy: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[dict[str, Any]]:
    """Undocumented keys next to the known ones, as real payloads carry."""
    extra = st.dictionaries(st.text(max_size=8), json_value, max_size=2)
    return st.tuples(strategy, extra).map(lambda pair: {**pair[1], **pair[0]})


objects = st.dictionaries(st.text(max_size=8), json_value, max_size=3)
names = st.one_of(st.none(), st.text(max_size=30), st.text(min_size=195, max_size=205))
block = _with_extra_keys(st.fixed_dictionaries({}, optional={"id": _maybe(st.text(max_size=24)), "name": _maybe(names)}))
kakao_user = _with_extra_keys(st.fixed_dictionaries(
    {"id": _maybe(user_ids)},
    optional={"type": _maybe(st.sampled_from(["botUserKey", "appUserId"])), "properties": _maybe(objects)},
))
user_request = _with_extra_keys(st.fixed_dictionaries(
    {"utterance": _maybe(utterances), "user": _maybe(kakao_user)},
    optional={"callbackUrl": _maybe(callbacks), "block": _maybe(block), "lang": _maybe(st.sampled_from(["ko", "kr"])),
              "timezone": _maybe(st.just("Asia/Seoul")), "params": _maybe(objects)},
))
payloads = _with_extra_keys(st.fixed_dictionaries(
    {
        "bot": _maybe(st.fixed_dictionaries({"id": _maybe(bot_ids)}, optional={"name": _maybe(names)})),
        "userRequest": _maybe(user_request),
    },
    optional={
        "action": _maybe(st.fixed_dictionaries({}, optional={"name": _maybe(names), "params": _maybe(objects),
                                                             "clientExtra": st.one_of(st.none(), objects)})),
        "intent": _maybe(block),
        "contexts": _maybe(st.lists(objects, max_size=2)),
        "flow": _maybe(st.fixed_dictionaries({}, optional={"trigger": _maybe(objects)})),
    },
))
bodies = st.one_of(
    payloads.map(lambda p: json.dumps(p).encode()),
    payloads.map(lambda p: json.dumps(p, ensure_ascii=False).encode()),
    json_value.map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=200),
)

def _fixture(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / name).read_text())


INTEGRITY = {
    "user messages without exactly one task": """
        SELECT count(*) FROM message m WHERE m.role = 'user'
        AND (SELECT count(*) FROM aiprocessingtask t WHERE t.message_id = m.id) <> 1""",
    "tasks whose message is missing or not theirs": """
        SELECT count(*) FROM aiprocessingtask t LEFT JOIN message m ON m.id = t.message_id
        WHERE m.id IS NULL OR m.role <> 'user' OR m.user_id <> t.user_id OR m.conversation_id <> t.conversation_id""",
    "conversations without a message": """
        SELECT count(*) FROM conversation c WHERE NOT EXISTS (SELECT 1 FROM message m WHERE m.conversation_id = c.id)""",
}


@pytest.fixture
def fuzz_client(settings: Settings) -> Iterator[tuple[TestClient, FastAPI]]:
    # No worker runs here, so a request without callbackUrl must not wait for an answer.
    app = create_app(settings.model_copy(update={"skill_sync_wait_seconds": 0.0}))
    with TestClient(app) as client:  # one event loop (client.portal) for the app and our queries
        yield client, app


def _query(client: TestClient, app: FastAPI, sql: str) -> list[Any]:
    async def run() -> list[Any]:
        async with app.state.db.engine.connect() as conn:
            return list((await conn.execute(text(sql))).all())

    return client.portal.call(run)  # type: ignore[union-attr]


def _took_the_message(reply: dict[str, Any]) -> bool:
    """A reply that means the utterance was stored and queued."""
    if reply.get("useCallback") is True:
        return True
    outputs = (reply.get("template") or {}).get("outputs") or []
    return any(texts.PREPARING in (o.get("simpleText") or {}).get("text", "") for o in outputs)


def test_any_skill_payload_gets_a_valid_reply_and_leaves_no_half_written_rows(
    fuzz_client: tuple[TestClient, FastAPI],
) -> None:
    client, app = fuzz_client
    stored: list[str] = []

    @given(body=bodies)
    @example(body=json.dumps(_fixture("skill_request_callback.json")).encode())
    @example(body=json.dumps(_fixture("skill_request_bottest.json")).encode())
    @example(body=json.dumps(_fixture("skill_request_params.json"), ensure_ascii=False).encode())
    @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=EXAMPLES <= 150,
              suppress_health_check=list(HealthCheck))
    def check(body: bytes) -> None:
        response = client.post("/skill", content=body, headers={"content-type": "application/json"})
        assert response.status_code < 500, response.text
        reply = response.json()
        if response.status_code == 200:
            assert reply["version"] == "2.0" and ("template" in reply or reply.get("useCallback") is True), reply
            if _took_the_message(reply):
                stored.append(json.loads(body)["userRequest"]["utterance"])
        else:
            assert response.status_code in (400, 413, 422) and reply["detail"], reply
        for problem, sql in INTEGRITY.items():
            assert _query(client, app, sql)[0][0] == 0, f"{problem} after {body!r}"

    check()
    rows = _query(client, app, "SELECT text FROM message WHERE role = 'user'")
    assert sorted(row[0] for row in rows) == sorted(stored)
    assert len(stored) >= 3, f"only {len(stored)} payloads were stored"


NUL_REQUESTS = [
    ("POST", "/skill", {"bot": {"id": "b"}, "userRequest": {"utterance": "hi\x00", "user": {"id": "u"}}}),
    ("POST", "/skill", {"bot": {"id": "b\x00"}, "userRequest": {"utterance": "hi", "user": {"id": "u"}}}),
    ("POST", "/skill", {"bot": {"id": "b"}, "userRequest": {"utterance": "hi", "user": {"id": "u\x00"}}}),
    ("POST", "/skill", {"bot": {"id": "b"}, "intent": {"name": "블록\x00"},
                        "userRequest": {"utterance": "hi", "user": {"id": "u"}}}),
    ("POST", "/welcome", {"bot": {"id": "b\x00"}, "userRequest": {"utterance": "hi", "user": {"id": "u"}}}),
    ("GET", "/admin/prompts?bot_id=%00", None),
    ("GET", "/admin/prompts/a%00b", None),
    ("POST", "/admin/prompts", {"name": "x", "system_prompt": "a\x00b"}),
    ("POST", "/admin/prompts", {"name": "x", "system_prompt": "ok", "bot_id": "a\x00"}),
    ("GET", "/admin/ai-tasks?status=%00", None),
    ("GET", "/api/knowledge/documents?category=%00", None),
    ("POST", "/api/knowledge/documents", {"bot_id": "b", "title": "t\x00", "text": "hello"}),
    ("POST", "/api/knowledge/documents", {"bot_id": "b\x00", "title": "t", "text": "hello"}),
    ("POST", "/api/knowledge/search", {"bot_id": "b\x00", "query": "q\x00"}),
]


@pytest.mark.parametrize(("method", "path", "body"), NUL_REQUESTS, ids=range(len(NUL_REQUESTS)))
async def test_nul_characters_are_refused_not_a_server_error(
    app: FastAPI, method: str, path: str, body: Any
) -> None:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        response = await client.request(method, path, json=body, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
        assert response.status_code < 500, response.text
        if path.startswith(("/skill", "/welcome")):
            assert response.status_code == 422 and "NUL" in response.json()["detail"]
        messages = (await client.get("/admin/ai-tasks", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})).json()
        assert messages == []
    await app.state.db.dispose()
