"""Cutting text to a length at a sentence end, for summaries and quoted passages."""

import re

_SENTENCE_END = re.compile(r"[.!?。…](?=\s)|\n")


def bounded(text: str, max_chars: int) -> str:
    """`text` cut to `max_chars`, at a sentence end when one falls in the second half."""
    text = text.strip()
    if len(text) <= max_chars:
        return text
    ends = [m.end() for m in _SENTENCE_END.finditer(text, 0, max_chars)]
    cut = ends[-1] if ends and ends[-1] > max_chars // 2 else max_chars
    return text[:cut].rstrip()
