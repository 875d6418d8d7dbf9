"""Knowledge API on both databases: every file type, replace, delete, filters, bad uploads, auth, answers."""

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
from fastapi import FastAPI

from app.config import Settings
from app.main import create_app
from app.services.knowledge import KnowledgeBase
from tests.conftest import ADMIN_TOKEN, make_settings
from tests.knowledge_helpers import make_pdf
from tests.pipeline_helpers import completion

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
BOT = "bot-1"
FAQ_CSV = "질문,답변,분류\n배송은 얼마나 걸리나요?,결제 후 2~3일 안에 도착해요.,배송\n환불은 어떻게 하나요?,마이페이지에서 환불 신청을 눌러 주세요.,환불\n"


def with_openai(database_url: str, tmp_path: Path, **overrides: Any) -> Settings:
    """Settings with an OpenAI key pointing at the mocked `openai.test` host."""
    return make_settings(
        database_url,
        chroma_path=str(tmp_path / "chroma"),
        openai_api_key="sk-test",
        openai_base_url="http://openai.test/v1",
        **overrides,
    )


async def upload(
    client: httpx.AsyncClient, name: str, data: bytes | str, bot: str = BOT, **fields: str
) -> httpx.Response:
    content = data.encode() if isinstance(data, str) else data
    return await client.post(
        "/api/knowledge/documents", headers=AUTH, files={"file": (name, content)}, data={"bot_id": bot, **fields}
    )


async def search(client: httpx.AsyncClient, query: str, **extra: Any) -> list[dict[str, Any]]:
    response = await client.post(
        "/api/knowledge/search", headers=AUTH, json={"bot_id": BOT, "query": query, "threshold": 0.0, **extra}
    )
    assert response.status_code == 200, response.text
    return response.json()["passages"]


async def listing(client: httpx.AsyncClient, **params: str) -> dict[str, Any]:
    response = await client.get("/api/knowledge/documents", headers=AUTH, params=params)
    assert response.status_code == 200, response.text
    return response.json()


def chunk_count(app: FastAPI) -> int:
    kb: KnowledgeBase | None = getattr(app.state, "knowledge", None)
    if kb is None:
        return 0
    return sum(c.count() for c in kb.store.client.list_collections())


async def test_every_file_type_is_ingested(client: httpx.AsyncClient, app: FastAPI) -> None:
    pdf = make_pdf([["매장 이용 안내"], ["강남점 주차는 2시간 무료예요."]])
    faq_json = json.dumps([{"question": "포장 되나요?", "answer": "2,000원에 선물 포장해 드려요."}], ensure_ascii=False)
    responses = [
        await upload(client, "notice.txt", "설 연휴에는 고객센터가 쉬어요.\n\n연휴 뒤 순서대로 답해 드려요."),
        await upload(client, "guide.md", "# 이용 안내\n## 회원\n가입하면 10% 쿠폰을 드려요."),
        await upload(client, "stores.pdf", pdf, title="매장 안내서"),
        await upload(client, "faq.csv", FAQ_CSV, category="고객지원"),
        await upload(client, "gift.json", faq_json),
    ]
    text = await client.post(
        "/api/knowledge/documents",
        headers=AUTH,
        json={"bot_id": BOT, "title": "환불 규정", "text": "환불은 받은 날로부터 7일 안에 신청할 수 있어요."},
    )
    responses.append(text)
    assert [r.status_code for r in responses] == [201] * 6, [r.text for r in responses]
    docs = {d["source"]: d for d in (await listing(client, bot_id=BOT))["items"]}
    assert {s: (d["type"], d["chunk_count"]) for s, d in docs.items()} == {
        "notice.txt": ("text", 1),
        "guide.md": ("markdown", 1),
        "stores.pdf": ("pdf", 2),
        "faq.csv": ("faq", 2),
        "gift.json": ("faq", 1),
        "환불 규정": ("text", 1),
    }
    assert docs["stores.pdf"]["title"] == "매장 안내서"
    assert chunk_count(app) == 8

    (best, *_) = await search(client, "주차 무료 시간")
    assert (best["source"], best["page"], best["type"]) == ("stores.pdf", 2, "pdf")
    (best, *_) = await search(client, "쿠폰 주나요")
    assert best["text"].startswith("이용 안내 > 회원\n")
    (best, *_) = await search(client, "배송 기간")
    assert (best["source"], best["category"], best["answer"]) == ("faq.csv", "배송", "결제 후 2~3일 안에 도착해요.")


async def test_reupload_replaces_chunks(client: httpx.AsyncClient, app: FastAPI) -> None:
    first = (await upload(client, "faq.csv", FAQ_CSV)).json()
    second = await upload(client, "faq.csv", "question,answer\n영업시간은요?,오전 10시부터 오후 6시까지예요.\n")
    assert second.status_code == 201
    body = second.json()
    assert (body["id"], body["version"], body["replaced"], body["chunk_count"]) == (first["id"], 2, True, 1)
    assert body["created_at"] == first["created_at"]
    assert (await listing(client, bot_id=BOT))["total"] == 1
    assert chunk_count(app) == 1
    assert [p["answer"] for p in await search(client, "배송은 얼마나 걸리나요?")] == ["오전 10시부터 오후 6시까지예요."]


async def test_delete_removes_from_both_stores(client: httpx.AsyncClient, app: FastAPI) -> None:
    kept = (await upload(client, "keep.txt", "이 문서는 남아요.")).json()
    doc = (await upload(client, "faq.csv", FAQ_CSV)).json()
    assert chunk_count(app) == 3
    response = await client.delete(f"/api/knowledge/documents/{doc['id']}", headers=AUTH)
    assert response.status_code == 204
    assert [d["id"] for d in (await listing(client))["items"]] == [kept["id"]]
    assert chunk_count(app) == 1
    assert {p["source"] for p in await search(client, "환불 배송")} <= {"keep.txt"}
    assert (await client.delete(f"/api/knowledge/documents/{doc['id']}", headers=AUTH)).status_code == 404


async def test_list_and_search_filters(client: httpx.AsyncClient) -> None:
    await upload(client, "faq.csv", FAQ_CSV, category="고객지원")
    await upload(client, "policy.txt", "환불은 7일 안에 신청해요. 배송비는 3,000원이에요.", category="정책")
    await upload(client, "other.txt", "다른 봇의 환불 안내", bot="bot-2", category="정책")

    assert (await listing(client))["total"] == 3
    assert {d["source"] for d in (await listing(client, bot_id=BOT))["items"]} == {"faq.csv", "policy.txt"}
    assert [d["source"] for d in (await listing(client, category="정책", bot_id=BOT))["items"]] == ["policy.txt"]
    assert [d["source"] for d in (await listing(client, type="faq"))["items"]] == ["faq.csv"]
    page = await listing(client, limit="1", offset="1")
    assert (len(page["items"]), page["total"]) == (1, 3)
    bad = await client.get("/api/knowledge/documents", headers=AUTH, params={"type": "exe"})
    assert bad.status_code == 422

    assert {p["source"] for p in await search(client, "환불 신청")} == {"faq.csv", "policy.txt"}
    assert {p["source"] for p in await search(client, "환불 신청", filter={"type": ["text"]})} == {"policy.txt"}
    # FAQ pairs carry their own category (from the CSV), which wins over the upload's.
    only_refund = await search(client, "환불 신청", filter={"category": ["환불"]})
    assert [p["answer"] for p in only_refund] == ["마이페이지에서 환불 신청을 눌러 주세요."]
    assert await search(client, "환불", filter={"source": ["nothing.txt"]}) == []


@pytest.mark.parametrize(
    ("name", "data", "status", "code", "message"),
    [
        ("empty.txt", b"", 422, "invalid_document", "empty"),
        ("virus.exe", b"MZ\x90\x00", 415, "unsupported_type", "unsupported file type"),
        ("big.txt", "가".encode() * 1500, 413, "document_too_large", "too large"),
        ("broken.pdf", b"%PDF-1.7\n1 0 obj << /Type /Catalog", 422, "invalid_document", "PDF"),
        ("scan.pdf", make_pdf([[]]), 422, "invalid_document", "no text found"),
        ("faq.csv", b"question,answer\n,only answer\n", 422, "invalid_document", "empty question or answer"),
    ],
)
async def test_bad_uploads_leave_nothing_behind(
    database_url: str, tmp_path: Path, name: str, data: bytes, status: int, code: str, message: str
) -> None:
    app = create_app(make_settings(database_url, chroma_path=str(tmp_path / "chroma"), knowledge_max_upload_bytes=4096))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        response = await upload(client, name, data)
        assert response.status_code == status, response.text
        assert response.json()["code"] == code and message in response.json()["detail"]
        assert (await listing(client))["total"] == 0
    assert chunk_count(app) == 0
    await app.state.db.dispose()


async def test_malformed_requests(client: httpx.AsyncClient) -> None:
    no_bot = await client.post("/api/knowledge/documents", headers=AUTH, files={"file": ("a.txt", b"hello")})
    assert no_bot.status_code == 422 and "bot_id" in no_bot.json()["detail"]
    no_file = await client.post(
        "/api/knowledge/documents", headers=AUTH, data={"bot_id": BOT}, files={"other": ("a.txt", b"x")}
    )
    assert no_file.status_code == 422 and "file" in no_file.json()["detail"]
    form = await client.post("/api/knowledge/documents", headers=AUTH, data={"bot_id": BOT})
    assert form.status_code == 415
    empty_text = await client.post(
        "/api/knowledge/documents", headers=AUTH, json={"bot_id": BOT, "title": "t", "text": "  "}
    )
    assert empty_text.status_code == 422
    not_json = await client.post(
        "/api/knowledge/documents", headers={**AUTH, "content-type": "application/json"}, content=b" \xfe\xff{"
    )
    assert (not_json.status_code, not_json.json()["code"]) == (400, "malformed_body")
    faq_without_pairs = await client.post(
        "/api/knowledge/documents", headers=AUTH, json={"bot_id": BOT, "title": "t", "type": "faq"}
    )
    assert faq_without_pairs.status_code == 422
    plain = await client.post("/api/knowledge/documents", headers={**AUTH, "content-type": "text/plain"}, content=b"x")
    assert plain.status_code == 415
    assert (await listing(client))["total"] == 0


async def test_failed_embedding_leaves_nothing_behind(database_url: str, tmp_path: Path) -> None:
    app = create_app(with_openai(database_url, tmp_path, embedding_backend="openai"))
    calls = 0

    def first_batch_only(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        if calls > 1:
            return httpx.Response(400, json={"error": {"message": "input too long"}})
        inputs = json.loads(request.content)["input"]
        data = [{"object": "embedding", "index": i, "embedding": [1.0, 0.0, 0.5]} for i in range(len(inputs))]
        return httpx.Response(200, json={"object": "list", "data": data, "model": "m", "usage": {}})

    many = "\n\n".join(f"{i}번째 문단은 충분히 길게 써서 조각이 여러 개 생기도록 합니다. " * 10 for i in range(400))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        with respx.mock(assert_all_called=False) as mock:
            mock.post("http://openai.test/v1/embeddings").mock(side_effect=first_batch_only)
            response = await upload(client, "long.txt", many)
        assert response.status_code == 502, response.text
        assert response.json()["code"] == "upstream_failed"
        assert (await listing(client))["total"] == 0
    assert calls == 2
    assert chunk_count(app) == 0
    await app.state.knowledge.aclose()
    await app.state.db.dispose()


async def test_query_offline_answers_from_the_knowledge_base(client: httpx.AsyncClient) -> None:
    await upload(client, "faq.csv", FAQ_CSV, title="자주 묻는 질문")
    found = await client.post("/api/knowledge/query", headers=AUTH, json={"bot_id": BOT, "question": "택배 며칠 걸려요?"})
    assert found.status_code == 200
    body = found.json()
    assert (body["mode"], body["found"]) == ("offline", True)
    assert body["answer"] == (
        "지식베이스의 자주 묻는 질문에서 찾은 답변이에요.\n\n결제 후 2~3일 안에 도착해요.\n\n(출처: 자주 묻는 질문)"
    )
    assert body["sources"][0]["source"] == "faq.csv"
    unknown = await client.post("/api/knowledge/query", headers=AUTH, json={"bot_id": BOT, "question": "주식 시세 알려줘"})
    assert (unknown.json()["found"], unknown.json()["sources"]) == (False, [])
    assert "찾지 못했어요" in unknown.json()["answer"]


async def test_query_with_a_key_answers_through_the_worker_pipeline(database_url: str, tmp_path: Path) -> None:
    """The same template, BOT_NAME and passages as a Kakao answer: one answer path for every caller."""
    app = create_app(with_openai(database_url, tmp_path, embedding_backend="local", bot_name="행복쇼핑"))
    sent: list[dict[str, Any]] = []

    def chat(request: httpx.Request) -> httpx.Response:
        sent.append(json.loads(request.content))
        return httpx.Response(200, json=completion("2~3일 걸려요!"))

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        await upload(client, "faq.csv", FAQ_CSV, title="자주 묻는 질문")
        with respx.mock(assert_all_called=False) as mock:
            mock.post("http://openai.test/v1/chat/completions").mock(side_effect=chat)
            response = await client.post(
                "/api/knowledge/query", headers=AUTH, json={"bot_id": BOT, "question": "배송 기간이 궁금해요"}
            )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["mode"], body["answer"]) == ("llm", "2~3일 걸려요!")
    system = sent[0]["messages"][0]["content"]
    assert "[1] 자주 묻는 질문 (faq.csv)\n질문: 배송은 얼마나 걸리나요?\n답변: 결제 후 2~3일 안에 도착해요." in system
    assert "행복쇼핑" in system and "우리 서비스" not in system
    assert sent[0]["messages"][1] == {"role": "user", "content": "배송 기간이 궁금해요"}
    assert app.state.pipeline.llm is not None  # built once, kept for the next question
    await app.state.closing.aclose()
    await app.state.db.dispose()


@pytest.mark.parametrize(
    ("llm_status", "headers", "status", "code"),
    [(429, {"Retry-After": "7"}, 503, "upstream_unavailable"), (401, {}, 502, "upstream_failed")],
)
async def test_query_reports_llm_failures_with_a_code(
    database_url: str, tmp_path: Path, llm_status: int, headers: dict[str, str], status: int, code: str
) -> None:
    app = create_app(with_openai(database_url, tmp_path, embedding_backend="local"))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        with respx.mock(assert_all_called=False) as mock:
            mock.post("http://openai.test/v1/chat/completions").respond(
                llm_status, json={"error": {"message": "no"}}, headers=headers
            )
            response = await client.post("/api/knowledge/query", headers=AUTH, json={"bot_id": BOT, "question": "q"})
    assert (response.status_code, response.json()["code"]) == (status, code), response.text
    assert response.headers.get("retry-after") == headers.get("Retry-After")
    await app.state.closing.aclose()
    await app.state.db.dispose()


async def test_admin_token_required(client: httpx.AsyncClient, database_url: str, tmp_path: Path) -> None:
    calls = [
        ("GET", "/api/knowledge/documents", None),
        ("POST", "/api/knowledge/documents", {"bot_id": BOT, "title": "t", "text": "x"}),
        ("DELETE", "/api/knowledge/documents/00000000-0000-0000-0000-000000000000", None),
        ("POST", "/api/knowledge/search", {"bot_id": BOT, "query": "q"}),
        ("POST", "/api/knowledge/query", {"bot_id": BOT, "question": "q"}),
    ]
    for method, path, body in calls:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {ADMIN_TOKEN}"}):
            response = await client.request(method, path, json=body, headers=headers)
            assert response.status_code == 401, (method, path, headers)
    off = create_app(make_settings(database_url, chroma_path=str(tmp_path / "c2"), admin_token=None))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=off), base_url="http://t") as c:
        assert (await c.get("/api/knowledge/documents", headers=AUTH)).status_code == 503
    await off.state.db.dispose()
