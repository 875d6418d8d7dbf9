"""Every file type parses; bad files fail with a clear Korean message."""

import json

import pytest

from app.services.knowledge.errors import InvalidDocument, UnsupportedType
from app.services.knowledge.parsing import parse_file
from app.services.knowledge.schemas import DocType
from tests.knowledge_helpers import make_pdf


def parse(data: bytes, name: str):  # type: ignore[no-untyped-def]
    return parse_file(data, name, bot_id="bot")


def test_text_utf8_bom_and_cp949() -> None:
    doc = parse("\ufeff배송 안내\r\n2일 걸려요.".encode(), "안내.txt")
    assert (doc.type, doc.title, doc.source) == (DocType.TEXT, "안내", "안내.txt")
    assert doc.sections[0].text == "배송 안내\n2일 걸려요."
    assert parse("환불 규정".encode("cp949"), "rules.TXT").sections[0].text == "환불 규정"


def test_markdown_and_path_is_reduced_to_file_name() -> None:
    doc = parse(b"# Title\nbody", "C:\\docs\\guide.md")
    assert (doc.type, doc.source) == (DocType.MARKDOWN, "guide.md")


def test_pdf_pages() -> None:
    doc = parse(make_pdf([["첫 쪽 내용"], [], ["셋째 쪽 내용"]]), "manual.pdf")
    assert doc.type is DocType.PDF
    assert [(s.page, s.text) for s in doc.sections] == [(1, "첫 쪽 내용"), (3, "셋째 쪽 내용")]


def test_faq_csv_with_korean_header_and_category() -> None:
    data = "분류,질문,답변\n배송,배송 얼마나 걸려요?,2일이요\n,,\n결제,카드 되나요?,네\n".encode()
    doc = parse(data, "faq.csv")
    assert doc.type is DocType.FAQ
    assert [(f.question, f.answer, f.category) for f in doc.faqs] == [
        ("배송 얼마나 걸려요?", "2일이요", "배송"),
        ("카드 되나요?", "네", "결제"),
    ]


def test_faq_csv_without_header_uses_first_two_columns() -> None:
    doc = parse("배송 기간?,2일\n환불?,3일".encode("cp949"), "faq.csv")
    assert [(f.question, f.answer) for f in doc.faqs] == [("배송 기간?", "2일"), ("환불?", "3일")]


@pytest.mark.parametrize(
    "payload",
    [
        [{"question": "Q1", "answer": "A1"}],
        {"faqs": [{"Question": "Q1", "Answer": "A1"}]},
        {"items": [{"질문": "Q1", "답변": "A1"}]},
    ],
)
def test_faq_json_shapes(payload: object) -> None:
    doc = parse(json.dumps(payload, ensure_ascii=False).encode(), "faq.json")
    assert [(f.question, f.answer) for f in doc.faqs] == [("Q1", "A1")]


@pytest.mark.parametrize(
    ("data", "name", "error", "message"),
    [
        (b"", "a.txt", InvalidDocument, "empty"),
        (b"  \n ", "a.md", InvalidDocument, "empty"),
        (b"MZ\x00\x01", "a.exe", UnsupportedType, "unsupported file type"),
        (b"abc\x00def", "a.txt", UnsupportedType, "not a text file"),
        (b"\xff\xfe\xfa\xfb", "a.txt", InvalidDocument, "encoding"),
        (b"not a pdf", "a.pdf", InvalidDocument, "PDF"),
        (b"%PDF-1.4\n garbage", "a.pdf", InvalidDocument, "PDF cannot be read"),
        (make_pdf([[]]), "a.pdf", InvalidDocument, "no text found"),
        (b"question,answer\nQ1,\n", "a.csv", InvalidDocument, "item 2"),
        (b"only-one-column\n", "a.csv", InvalidDocument, "two columns"),
        (b"{not json", "a.json", InvalidDocument, "JSON"),
        (b'{"x": 1}', "a.json", InvalidDocument, "must be a list"),
    ],
)
def test_bad_files(data: bytes, name: str, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        parse(data, name)
