"""Read uploaded bytes into a `ParsedDocument`: plain text, Markdown, PDF, or FAQ pairs (CSV, JSON)."""

import csv
import io
import json
from pathlib import PurePath
from typing import Any

from pypdf import PdfReader
from pypdf.errors import PyPdfError

from app.services.knowledge.errors import InvalidDocument, UnsupportedType
from app.services.knowledge.schemas import DocType, FaqPair, ParsedDocument, Section

SUFFIXES = {
    ".txt": DocType.TEXT,
    ".text": DocType.TEXT,
    ".md": DocType.MARKDOWN,
    ".markdown": DocType.MARKDOWN,
    ".pdf": DocType.PDF,
    ".csv": DocType.FAQ,
    ".json": DocType.FAQ,
}
_QUESTION_KEYS = ("question", "q", "질문", "문의")
_ANSWER_KEYS = ("answer", "a", "답변", "답")
_CATEGORY_KEYS = ("category", "분류", "카테고리")
_LIST_KEYS = ("faqs", "faq", "items", "data")


def parse_file(
    data: bytes, filename: str, *, bot_id: str, title: str | None = None, category: str | None = None
) -> ParsedDocument:
    """Parse by the file's extension; the file name is the source that a re-upload replaces."""
    name = PurePath(filename.replace("\\", "/")).name.strip()
    suffix = PurePath(name).suffix.lower()
    doc_type = SUFFIXES.get(suffix)
    if doc_type is None:
        allowed = ", ".join(sorted(SUFFIXES))
        raise UnsupportedType(f"unsupported file type '{suffix or name}'; supported: {allowed}")
    if not data.strip():
        raise InvalidDocument("the file is empty")
    doc = ParsedDocument(
        bot_id=bot_id, title=title or PurePath(name).stem or name, source=name, type=doc_type, category=category
    )
    if doc_type is DocType.PDF:
        doc.sections = _pdf_pages(data)
    elif doc_type is DocType.FAQ:
        text = decode_text(data)
        doc.faqs = faq_from_json(text) if suffix == ".json" else faq_from_csv(text)
    else:
        doc.sections = [Section(text=decode_text(data))]
    if doc.char_count == 0:
        raise InvalidDocument("no readable content in the document")
    return doc


def decode_text(data: bytes) -> str:
    """UTF-8 (with or without BOM), else CP949 as Korean Excel and Notepad save it."""
    if b"\x00" in data:
        raise UnsupportedType("not a text file (binary files cannot be uploaded)")
    for encoding in ("utf-8-sig", "cp949"):
        try:
            text = data.decode(encoding)
        except UnicodeDecodeError:
            continue
        if text.strip():
            return text.replace("\r\n", "\n")
        raise InvalidDocument("the file is empty")
    raise InvalidDocument("unknown text encoding; save the file as UTF-8 and upload it again")


def _pdf_pages(data: bytes) -> list[Section]:
    if not data.startswith(b"%PDF-"):
        raise InvalidDocument("not a PDF file, or a damaged one")
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise InvalidDocument("the PDF is password-protected")
        pages = [(page.extract_text() or "") for page in reader.pages]
    except InvalidDocument:
        raise
    except (PyPdfError, ValueError, KeyError, TypeError, AttributeError, IndexError, OSError) as exc:
        # pypdf raises a mix of its own and builtin errors on malformed files.
        raise InvalidDocument("the PDF cannot be read: damaged or an unsupported variant") from exc
    sections = [Section(text=text, page=number) for number, text in enumerate(pages, 1) if text.strip()]
    if not sections:
        raise InvalidDocument("no text found in the PDF (scanned image PDFs cannot be read)")
    return sections


def faq_from_csv(text: str) -> list[FaqPair]:
    """Rows of question, answer (and optional category); a header row names the columns."""
    rows = [row for row in csv.reader(io.StringIO(text)) if any(cell.strip() for cell in row)]
    if not rows:
        raise InvalidDocument("the file is empty")
    header = [cell.strip().lower() for cell in rows[0]]
    q, a, c = _index(header, _QUESTION_KEYS), _index(header, _ANSWER_KEYS), _index(header, _CATEGORY_KEYS)
    has_header = q is not None and a is not None
    if has_header:
        rows = rows[1:]
    elif len(header) >= 2:
        q, a, c = 0, 1, None
    else:
        raise InvalidDocument("a CSV needs two columns, question and answer (header: question,answer or 질문,답변)")
    records = [
        {"question": _cell(row, q), "answer": _cell(row, a), "category": _cell(row, c)} for row in rows
    ]
    return _pairs(records, first_line=2 if has_header else 1)


def faq_from_json(text: str) -> list[FaqPair]:
    """A list of {question, answer, category?} objects, or an object holding one under `faqs`/`items`."""
    try:
        data: Any = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidDocument(f"invalid JSON (line {exc.lineno})") from None
    if isinstance(data, dict):
        data = next((data[k] for k in _LIST_KEYS if isinstance(data.get(k), list)), None)
    if not isinstance(data, list) or not all(isinstance(item, dict) for item in data):
        raise InvalidDocument('the JSON must be a list like [{"question": "...", "answer": "..."}]')
    records = [
        {
            "question": _value(item, _QUESTION_KEYS),
            "answer": _value(item, _ANSWER_KEYS),
            "category": _value(item, _CATEGORY_KEYS),
        }
        for item in data
    ]
    return _pairs(records, first_line=1)


def _pairs(records: list[dict[str, str]], *, first_line: int) -> list[FaqPair]:
    pairs: list[FaqPair] = []
    for number, record in enumerate(records, first_line):
        question, answer = record["question"], record["answer"]
        if not question and not answer:
            continue
        if not question or not answer:
            raise InvalidDocument(f"item {number} has an empty question or answer")
        pairs.append(FaqPair(question=question, answer=answer, category=record["category"] or None))
    if not pairs:
        raise InvalidDocument("no question and answer pairs found")
    return pairs


def _index(header: list[str], keys: tuple[str, ...]) -> int | None:
    return next((i for i, cell in enumerate(header) if cell in keys), None)


def _cell(row: list[str], index: int | None) -> str:
    return row[index].strip() if index is not None and index < len(row) else ""


def _value(item: dict[str, Any], keys: tuple[str, ...]) -> str:
    lowered = {str(k).strip().lower(): v for k, v in item.items()}
    value = next((lowered[k] for k in keys if k in lowered), None)
    return str(value).strip() if value is not None else ""
