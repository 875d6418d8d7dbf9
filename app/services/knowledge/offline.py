"""Answers without an LLM: quote the best FAQ answer or passage, or say honestly that we don't know."""

from app.services.excerpt import bounded
from app.services.knowledge.schemas import DocType, OfflineAnswer, Passage

FAQ_INTRO = "지식베이스의 자주 묻는 질문에서 찾은 답변이에요."
PASSAGE_INTRO = "지식베이스 자료에서 찾은 내용이에요."
NOT_FOUND = (
    "죄송해요, 그 질문에 대한 답은 제가 가진 자료에서 찾지 못했어요. "
    "질문을 조금 바꿔서 다시 물어봐 주시거나 상담원 연결을 요청해 주세요."
)
SUGGEST_INTRO = "혹시 아래 질문 중에 찾으시는 내용이 있나요? 그대로 보내 주시면 답변해 드릴게요."
# Room for the quote inside one Kakao text bubble (1000 characters) with the intro and source.
MAX_QUOTE = 700
# A suggested FAQ question longer than this is cut, so three always fit the bubble.
MAX_SUGGESTION = 120


def compose(passages: list[Passage]) -> OfflineAnswer:
    """Quote the best passage when it is confident (reaches `RAG_SCORE_THRESHOLD`), naming where it came from.

    A weaker best match is not quoted (a question no entry answers would get a wrong entry); the reply
    says so and lists the nearest FAQ questions, since the right one is often among them (also as
    `suggestions`, which Kakao shows as quick replies that send the question).
    """
    if not passages or not passages[0].confident:
        questions = list(dict.fromkeys(_faq_question(p) for p in passages if p.type is DocType.FAQ))
        return OfflineAnswer(text=_not_found(questions), found=False, suggestions=questions)
    best = passages[0]
    if best.type is DocType.FAQ and best.answer:
        # Long FAQ answers are cut too: the whole reply must fit one Kakao bubble (1000 characters).
        body, intro = _excerpt(best.answer), FAQ_INTRO
    else:
        body, intro = _excerpt(best.text), PASSAGE_INTRO
    return OfflineAnswer(text=f"{intro}\n\n{body}\n\n{source_label(best)}", found=True, sources=[best])


def source_label(passage: Passage) -> str:
    """`(출처: 제목, 3쪽)` for a user-facing answer."""
    page = f", {passage.page}쪽" if passage.page else ""
    return f"(출처: {passage.title or passage.source}{page})"


def _not_found(questions: list[str]) -> str:
    if not questions:
        return NOT_FOUND
    listed = "\n".join(f"· {bounded(q, MAX_SUGGESTION)}" for q in questions)
    return f"{NOT_FOUND}\n\n{SUGGEST_INTRO}\n{listed}"


def _faq_question(passage: Passage) -> str:
    """The question of an FAQ chunk (`질문: ...\n답변: ...`, as `ingest.build_chunks` writes it)."""
    return passage.text.split("\n답변: ", 1)[0].removeprefix("질문: ").strip()


def _excerpt(text: str) -> str:
    quote = bounded(text, MAX_QUOTE)
    return quote if len(quote) == len(text.strip()) else quote + " …"
