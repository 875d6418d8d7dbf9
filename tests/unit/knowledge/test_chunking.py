"""Chunks stay within the size, break at sentences, overlap, and keep Markdown headings."""

from itertools import pairwise

from app.services.knowledge.chunking import chunk_markdown, chunk_text


def test_short_text_is_one_chunk() -> None:
    assert chunk_text("배송은 2일 걸려요.\n\n환불은 3일 걸려요.", size=1000, overlap=100) == [
        "배송은 2일 걸려요.\n\n환불은 3일 걸려요."
    ]


def test_chunks_respect_size_and_end_at_sentences() -> None:
    text = "\n\n".join(f"{i}번 문단의 첫 문장입니다. 두 번째 문장도 있어요! 세 번째는 질문일까요?" for i in range(40))
    chunks = chunk_text(text, size=300, overlap=60)
    assert len(chunks) > 5
    assert all(len(c) <= 300 for c in chunks)
    assert all(c.rstrip().endswith((".", "!", "?")) for c in chunks)
    for previous, current in pairwise(chunks):
        # The overlap repeats the end of the previous chunk at the start of the next.
        first_sentence = current.split(". ")[0].split("\n")[0]
        assert first_sentence in previous


def test_overlong_sentence_is_cut_at_spaces() -> None:
    text = " ".join(["가나다라마바사"] * 400)
    chunks = chunk_text(text, size=500, overlap=50)
    assert all(len(c) <= 500 for c in chunks)
    assert all(not c.startswith(" ") and "가나다라마바사" in c for c in chunks)


def test_markdown_chunks_carry_heading_path() -> None:
    md = "# 이용 안내\n소개.\n\n## 배송\n배송은 2일 걸려요.\n\n### 해외\n해외는 7일.\n\n## 환불\n환불은 3일."
    assert chunk_markdown(md, size=1000, overlap=100) == [
        "이용 안내\n소개.",
        "이용 안내 > 배송\n배송은 2일 걸려요.",
        "이용 안내 > 배송 > 해외\n해외는 7일.",
        "이용 안내 > 환불\n환불은 3일.",
    ]
