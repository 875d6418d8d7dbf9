"""Offline retrieval on a 48-pair Korean FAQ with paraphrased questions (local backend, no network).

`dev` holds hard paraphrases (slang, synonyms, no shared nouns) used while tuning the analyser and
the synonym table; `test` was written afterwards and never tuned on.
"""

import asyncio
import uuid
from pathlib import Path

import pytest

from app.models import KnowledgeDocument
from app.services.knowledge import KnowledgeBase
from app.services.knowledge.ingest import build_chunks
from app.services.knowledge.parsing import parse_file
from tests.knowledge_helpers import FIXTURES, faq_pairs, faq_queries
from tests.unit.knowledge.conftest import kb_settings

BOT = "shop"
UNRELATED = ["오늘 날씨 어때요?", "점심 메뉴 뭐 먹지", "안녕하세요", "비트코인 시세 알려줘", "파이썬 코딩 가르쳐 줘"]


@pytest.fixture(scope="module")
def faq_kb(tmp_path_factory: pytest.TempPathFactory) -> KnowledgeBase:
    kb = KnowledgeBase(kb_settings(Path(tmp_path_factory.mktemp("faq"))))
    parsed = parse_file((FIXTURES / "faq_ko.json").read_bytes(), "faq_ko.json", bot_id=BOT)
    document = KnowledgeDocument(
        id=uuid.uuid4(), bot_id=BOT, source=parsed.source, title="자주 묻는 질문", type=parsed.type, content_hash=""
    )
    asyncio.run(kb.add(BOT, build_chunks(parsed, document, size=1000, overlap=150)))
    return kb


async def hit_rates(kb: KnowledgeBase, name: str) -> tuple[float, float, int]:
    questions = [pair["question"] for pair in faq_pairs()]
    hit1 = hit3 = 0
    queries = faq_queries(name)
    for query, expected in queries:
        passages = await kb.retrieve(BOT, query, k=3, threshold=0.0)
        found = [p.text.splitlines()[0].removeprefix("질문: ") for p in passages]
        hit1 += found[:1] == [questions[expected]]
        hit3 += questions[expected] in found
    return hit1 / len(queries), hit3 / len(queries), len(queries)


async def test_paraphrased_questions_find_their_faq(faq_kb: KnowledgeBase) -> None:
    assert len(faq_pairs()) >= 40
    hits1 = hits3 = 0.0
    total = 0
    for name in ("dev", "test"):
        hit1, hit3, count = await hit_rates(faq_kb, name)
        print(f"\nFAQ retrieval ({name}, {count} queries): hit@1={hit1:.3f} hit@3={hit3:.3f}")
        assert hit3 >= 0.85, name
        hits1, hits3, total = hits1 + hit1 * count, hits3 + hit3 * count, total + count
    print(f"FAQ retrieval (all, {total} queries): hit@1={hits1 / total:.3f} hit@3={hits3 / total:.3f}")
    assert hits3 / total >= 0.9


async def test_offline_answer_quotes_the_faq(faq_kb: KnowledgeBase) -> None:
    answer = await faq_kb.offline_answer(BOT, "비밀번호를 까먹었는데 어떻게 해요?")
    assert answer.found
    assert answer.text.startswith("지식베이스의 자주 묻는 질문에서 찾은 답변이에요.")
    assert "비밀번호 찾기" in answer.text
    assert "(출처: 자주 묻는 질문)" in answer.text
    assert answer.sources[0].source == "faq_ko.json"


async def test_unrelated_questions_get_an_honest_reply(faq_kb: KnowledgeBase) -> None:
    for question in UNRELATED:
        answer = await faq_kb.offline_answer(BOT, question)
        assert not answer.found, question
        assert "찾지 못했어요" in answer.text
        assert answer.sources == []


async def test_other_bots_see_nothing(faq_kb: KnowledgeBase) -> None:
    assert await faq_kb.retrieve("another-bot", "배송은 얼마나 걸리나요?") == []
    answer = await faq_kb.offline_answer("another-bot", "배송은 얼마나 걸리나요?")
    assert not answer.found
