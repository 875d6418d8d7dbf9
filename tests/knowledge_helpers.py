"""Test data for the knowledge base: a hand-built PDF with Korean text, and the FAQ fixtures."""

import json
from pathlib import Path

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "knowledge"


def faq_pairs() -> list[dict[str, str]]:
    return json.loads((FIXTURES / "faq_ko.json").read_text(encoding="utf-8"))


def faq_queries(name: str) -> list[tuple[str, int]]:
    return [(q, i) for q, i in json.loads((FIXTURES / f"faq_queries_{name}.json").read_text(encoding="utf-8"))]


def make_pdf(pages: list[list[str]]) -> bytes:
    """A valid PDF whose pages hold the given lines, with a ToUnicode map so text extraction sees Korean."""
    chars = sorted({c for page in pages for line in page for c in line})
    cmap_lines = []
    for start in range(0, len(chars), 100):
        block = chars[start : start + 100]
        cmap_lines.append(f"{len(block)} beginbfchar")
        cmap_lines += [f"<{ord(c):04X}> <{ord(c):04X}>" for c in block]
        cmap_lines.append("endbfchar")
    cmap = (
        "/CIDInit /ProcSet findresource begin 12 dict begin begincmap\n"
        "/CIDSystemInfo << /Registry (Adobe) /Ordering (UCS) /Supplement 0 >> def\n"
        "/CMapName /Adobe-Identity-UCS def /CMapType 2 def\n"
        "1 begincodespacerange <0000> <FFFF> endcodespacerange\n"
        + "\n".join(cmap_lines)
        + "\nendcmap CMapName currentdict /CMap defineresource pop end end"
    ).encode()
    page_ids = [7 + 2 * i for i in range(len(pages))]
    objects: dict[int, bytes] = {
        1: b"<< /Type /Catalog /Pages 2 0 R >>",
        2: f"<< /Type /Pages /Kids [{' '.join(f'{p} 0 R' for p in page_ids)}] /Count {len(pages)} >>".encode(),
        3: b"<< /Type /Font /Subtype /Type0 /BaseFont /KoreanTest /Encoding /Identity-H "
        b"/DescendantFonts [4 0 R] /ToUnicode 5 0 R >>",
        4: b"<< /Type /Font /Subtype /CIDFontType2 /BaseFont /KoreanTest "
        b"/CIDSystemInfo << /Registry (Adobe) /Ordering (Identity) /Supplement 0 >> /FontDescriptor 6 0 R >>",
        5: _stream(cmap),
        6: b"<< /Type /FontDescriptor /FontName /KoreanTest /Flags 4 /FontBBox [0 0 1000 1000] "
        b"/ItalicAngle 0 /Ascent 1000 /Descent 0 /CapHeight 1000 /StemV 80 >>",
    }
    for page_id, lines in zip(page_ids, pages, strict=True):
        text = " T* ".join(f"<{''.join(f'{ord(c):04X}' for c in line)}> Tj" for line in lines)
        content = f"BT /F1 12 Tf 14 TL 50 800 Td {text} ET".encode()
        objects[page_id] = (
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] "
            f"/Resources << /Font << /F1 3 0 R >> >> /Contents {page_id + 1} 0 R >>"
        ).encode()
        objects[page_id + 1] = _stream(content)
    out = bytearray(b"%PDF-1.4\n")
    offsets = {}
    for number in sorted(objects):
        offsets[number] = len(out)
        out += f"{number} 0 obj\n".encode() + objects[number] + b"\nendobj\n"
    xref = len(out)
    size = max(objects) + 1
    out += f"xref\n0 {size}\n0000000000 65535 f \n".encode()
    for number in range(1, size):
        out += f"{offsets[number]:010d} 00000 n \n".encode()
    out += f"trailer\n<< /Size {size} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)


def _stream(data: bytes) -> bytes:
    return f"<< /Length {len(data)} >>\nstream\n".encode() + data + b"\nendstream"
