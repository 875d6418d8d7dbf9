"""Split text into chunks of at most `size` characters along paragraphs and sentences, with overlap."""

import re

_PARAGRAPH = re.compile(r"\n\s*\n")
# After sentence punctuation (ASCII or CJK) followed by space, or at a line break inside a paragraph.
_SENTENCE = re.compile(r"(?<=[.!?。！？…])\s+|\n")
_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")


def chunk_text(text: str, *, size: int, overlap: int) -> list[str]:
    """Chunks no longer than `size`; each repeats up to `overlap` characters of the one before."""
    units = _units(text, size)
    chunks: list[str] = []
    current: list[tuple[str, str]] = []
    length = 0
    for unit in units:
        added = len(unit[0]) + (len(unit[1]) if current else 0)
        if current and length + added > size:
            chunks.append(_join(current))
            current = _tail(current, overlap, room=size - len(unit[0]) - 2)
            length = len(_join(current)) if current else 0
            added = len(unit[0]) + (len(unit[1]) if current else 0)
        current.append(unit)
        length += added
    if current:
        chunks.append(_join(current))
    return [c for c in chunks if c.strip()]


def chunk_markdown(text: str, *, size: int, overlap: int) -> list[str]:
    """Chunk each heading's section apart, starting every chunk with its heading path for context."""
    chunks: list[str] = []
    for path, body in _sections(text):
        prefix = " > ".join(path)
        budget = max(size - len(prefix) - 1, size // 2) if prefix else size
        for piece in chunk_text(body, size=budget, overlap=min(overlap, budget // 2 - 1)):
            chunks.append(f"{prefix}\n{piece}" if prefix else piece)
    return chunks


def _units(text: str, size: int) -> list[tuple[str, str]]:
    """(piece, separator before it): sentences of paragraphs, with over-long ones cut at spaces."""
    units: list[tuple[str, str]] = []
    for paragraph in _PARAGRAPH.split(text.strip()):
        first = True
        for sentence in _SENTENCE.split(paragraph):
            sentence = " ".join(sentence.split())
            for piece in _cut(sentence, size):
                units.append((piece, "\n\n" if first else " "))
                first = False
    return units


def _cut(sentence: str, size: int) -> list[str]:
    pieces: list[str] = []
    while len(sentence) > size:
        cut = sentence.rfind(" ", size // 2, size + 1)
        cut = cut if cut > 0 else size
        pieces.append(sentence[:cut].strip())
        sentence = sentence[cut:].strip()
    if sentence:
        pieces.append(sentence)
    return pieces


def _join(units: list[tuple[str, str]]) -> str:
    return "".join((sep if i else "") + piece for i, (piece, sep) in enumerate(units))


def _tail(units: list[tuple[str, str]], overlap: int, *, room: int) -> list[tuple[str, str]]:
    """The last whole units of a chunk fitting in `overlap` (and in the room the next unit leaves)."""
    limit = min(overlap, room)
    tail: list[tuple[str, str]] = []
    length = 0
    for piece, sep in reversed(units):
        length += len(piece) + len(sep)
        if length > limit:
            break
        tail.insert(0, (piece, sep))
    if not tail and limit > 20:
        # One long sentence: repeat its end, starting at a word boundary.
        last = units[-1][0][-limit:]
        space = last.find(" ")
        tail = [(last[space + 1 :] if 0 <= space < len(last) // 2 else last, "")]
    return tail


def _sections(text: str) -> list[tuple[list[str], str]]:
    sections: list[tuple[list[str], str]] = []
    path: list[tuple[int, str]] = []
    body: list[str] = []
    for line in text.splitlines():
        match = _HEADING.match(line)
        if match:
            sections.append(([h for _, h in path], "\n".join(body)))
            level = len(match.group(1))
            path = [(lvl, h) for lvl, h in path if lvl < level] + [(level, match.group(2))]
            body = []
        else:
            body.append(line)
    sections.append(([h for _, h in path], "\n".join(body)))
    return [(p, b) for p, b in sections if b.strip()]
