"""CoNg query expansion, weighted BM25 and the confident flag that decides what the offline answer quotes."""

from pathlib import Path

import pytest

from app.services.knowledge import KnowledgeBase
from app.services.knowledge.base import Chunk
from app.services.knowledge.expansion import WEIGHT, expand, neighbours
from app.services.knowledge.lexical import BM25Index
from app.services.knowledge.morphemes import Morphemes
from app.services.knowledge.offline import NOT_FOUND, SUGGEST_INTRO, compose
from app.services.knowledge.retrieval import MIN_SCORE
from tests.unit.knowledge.conftest import kb_settings

pytestmark = pytest.mark.usefixtures("kiwi")


def test_expansion_adds_only_the_documents_words_below_the_users_own() -> None:
    (analysis,) = Morphemes().analyze(["택배 받으려면 며칠 기다려야 돼요?"])
    weights = expand(analysis.terms, analysis.morphemes, {"일주일", "소포", "환불", "택배"})
    assert weights["택배"] == weights["며칠"] == 1.0
    assert 0 < weights["일주일"] <= WEIGHT and 0 < weights["소포"] <= WEIGHT
    assert "환불" not in weights  # in the documents, but not near any word of the query
    assert set(weights) == set(analysis.terms) | {"일주일", "소포"}


def test_unknown_morphemes_have_no_neighbours() -> None:
    assert neighbours("렉카", "NNP") == ()
    assert neighbours("택배", "NNG")[0][1] > 0.6


def test_weighted_terms_count_their_weight_in_score_and_mass() -> None:
    index = BM25Index([["배송", "기간"], ["환불", "기간"]])
    plain_raw, plain = index.scores(["배송", "기간"])
    same_raw, same = index.scores({"배송": 1.0, "기간": 1.0})
    assert (plain_raw == same_raw).all() and (plain == same).all()
    half_raw, _ = index.scores({"배송": 0.5})
    full_raw, _ = index.scores({"배송": 1.0})
    assert half_raw[0] == pytest.approx(full_raw[0] / 2)
    # An expansion the corpus lacks is never added, but a weighted unseen term still dilutes coverage.
    assert index.scores({"배송": 1.0, "주식": 0.5})[1][0] > index.scores({"배송": 1.0, "주식": 1.0})[1][0]


async def test_weak_matches_are_returned_but_not_quoted(tmp_path: Path) -> None:
    kb = KnowledgeBase(kb_settings(tmp_path, rag_score_threshold=0.9))
    question, answer = "배송은 얼마나 걸리나요?", "결제 후 2~3일 안에 도착해요."
    await kb.add("bot", [Chunk("d:1:0", f"질문: {question}\n답변: {answer}", {"doc_id": "d", "type": "faq", "answer": answer},
                               f"{question}\n{question}\n{answer}")])
    (passage,) = await kb.retrieve("bot", "택배 받으려면 며칠 기다려야 돼요?")
    assert MIN_SCORE <= passage.score < 0.9 and not passage.confident
    answer_text = await kb.offline_answer("bot", "택배 받으려면 며칠 기다려야 돼요?")
    assert (answer_text.found, answer_text.sources) == (False, [])
    # It says it does not know, quotes no answer, and offers the nearest FAQ question instead.
    assert answer_text.text == f"{NOT_FOUND}\n\n{SUGGEST_INTRO}\n· {question}"
    assert answer_text.suggestions == [question]
    assert await kb.retrieve("bot", "오늘 점심 뭐 먹지") == []  # nothing in common: nothing returned


def test_compose_quotes_only_a_confident_best_passage() -> None:
    from app.services.knowledge.schemas import DocType, Passage

    best = Passage(text="질문: q\n답변: a", score=0.5, source="s", title="t", doc_id="d", chunk_id="c",
                   type=DocType.FAQ, answer="a")
    assert compose([best]).found
    assert compose([best.model_copy(update={"confident": False})]).text == f"{NOT_FOUND}\n\n{SUGGEST_INTRO}\n· q"
    text_passage = best.model_copy(update={"confident": False, "type": DocType.TEXT})
    assert compose([text_passage]).text == compose([]).text == NOT_FOUND
    assert compose([text_passage]).suggestions == compose([best]).suggestions == []


def test_a_long_faq_answer_fits_one_kakao_bubble() -> None:
    from app.services.knowledge.schemas import DocType, Passage

    answer = "배송은 보통 2일 걸려요. " * 120
    long = Passage(text=f"질문: q\n답변: {answer}", score=0.9, source="s", title="자주 묻는 질문", doc_id="d",
                   chunk_id="c", type=DocType.FAQ, answer=answer)
    text = compose([long]).text
    assert len(text) <= 1000 and text.endswith(" …\n\n(출처: 자주 묻는 질문)")
