"""Turn LLM output into plain-text bubbles: Kakao shows Markdown raw and caps each bubble."""

import re

from app.kakao.limits import MAX_OUTPUTS, MAX_SIMPLE_TEXT_CHARS

CUT_MARKER = "\n\n(답변이 길어 일부를 생략했어요.)"

# Protected spans (code, URLs) are parked behind private-use placeholders so that the
# Markdown rules below can never touch an underscore or asterisk inside them.
_OPEN, _CLOSE = "\ue000", "\ue001"
_PLACEHOLDER = re.compile(f"{_OPEN}(\\d+){_CLOSE}")

_FENCED_CODE = re.compile(r"^[ \t]*(`{3,}|~{3,})[^\n]*\n(.*?)(?:^[ \t]*\1[ \t]*$|\Z)", re.M | re.S)
_INLINE_CODE = re.compile(r"(`+)(.+?)\1")
_ESCAPE = re.compile(r"\\([\\`*_{}\[\]()#+\-.!>~|])")
_URL_CHARS = r"[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]"
# One level of balanced parentheses keeps links such as Wikipedia's "Foo_(bar)" whole.
_LINK = re.compile(r"(!?)\[([^\]\n]*)\]\(\s*<?((?:[^\s()<>]|\([^\s()]*\))+)>?(?:\s+\"[^\"\n]*\")?\s*\)")
_AUTOLINK = re.compile(r"<((?:https?|ftp)://[^\s<>]+)>")
_BARE_URL = re.compile(rf"(?:https?|ftp)://{_URL_CHARS}+")
_URL_TRAILING_PUNCT = ".,;:!?'\"*_~"
_OPENERS = {")": "(", "]": "["}

_RULE = re.compile(r"^[ \t]*([-*_])(?:[ \t]*\1){2,}[ \t]*$", re.M)
_SETEXT_UNDERLINE = re.compile(r"^[ \t]*=+[ \t]*$", re.M)
_HEADING = re.compile(r"^[ \t]*#{1,6}[ \t]+(.*?)(?:[ \t]+#+)?[ \t]*$", re.M)
_BLOCKQUOTE = re.compile(r"^[ \t]*(?:>[ \t]?)+", re.M)
_TABLE_SEPARATOR = re.compile(r"^[ \t]*\|?[ \t]*:?-{3,}:?[ \t]*(?:\|[ \t]*:?-{3,}:?[ \t]*)*\|?[ \t]*(?:\n|$)", re.M)
_TABLE_ROW = re.compile(r"^[ \t]*\|(.*)\|[ \t]*$", re.M)
_BULLET = re.compile(r"^([ \t]*)[-*+][ \t]+(?:\[[ xX]\][ \t]+)?", re.M)

# An opening "*" right after an ASCII letter/digit is arithmetic ("2*3*4"), not emphasis.
_BOLD_STARS = re.compile(r"(?<![A-Za-z0-9*])\*\*(?=\S)([^\n]+?)(?<=\S)\*\*(?!\*)")
_BOLD_UNDERSCORES = re.compile(r"(?<!\w)__(?=\S)([^\n]+?)(?<=\S)__(?!\w)")
_ITALIC_STAR = re.compile(r"(?<![A-Za-z0-9*])\*(?=[^\s*])([^\n*]+?)(?<=\S)\*(?!\*)")
# Underscores only count at word edges, so snake_case survives.
_ITALIC_UNDERSCORE = re.compile(r"(?<!\w)_(?=\S)([^\n_]+?)(?<=\S)_(?!\w)")
_STRIKE = re.compile(r"~~(?=\S)([^\n]+?)(?<=\S)~~")

_TRAILING_SPACE = re.compile(r"[ \t]+$", re.M)
_BLANK_LINES = re.compile(r"\n(?:[ \t]*\n){2,}")
_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n\s*")
# Split after sentence-final punctuation followed by spaces, or at line breaks.
_SENTENCE_BREAK = re.compile(r"(?<=[.!?。！？…])[ \t]+|\n")


class _Vault:
    """Parks text spans behind placeholders and restores them at the end."""

    def __init__(self) -> None:
        self._spans: list[str] = []

    def park(self, span: str) -> str:
        self._spans.append(span)
        return f"{_OPEN}{len(self._spans) - 1}{_CLOSE}"

    def restore(self, text: str) -> str:
        return _PLACEHOLDER.sub(lambda m: self._spans[int(m.group(1))], text)


def _split_url_tail(url: str) -> tuple[str, str]:
    """Separate sentence punctuation and unbalanced closing brackets from a bare URL."""
    end = len(url)
    while end > 0:
        last = url[end - 1]
        opener = _OPENERS.get(last)
        unbalanced = opener is not None and url.count(opener, 0, end) < url.count(last, 0, end)
        if last not in _URL_TRAILING_PUNCT and not unbalanced:
            break
        end -= 1
    return url[:end], url[end:]


def _protect_links(text: str, vault: _Vault) -> str:
    def link(match: re.Match[str]) -> str:
        label, url = match.group(2).strip(), match.group(3)
        parked = vault.park(url)
        return parked if not label or label == url else f"{label} ({parked})"

    def bare(match: re.Match[str]) -> str:
        url, tail = _split_url_tail(match.group(0))
        return vault.park(url) + tail

    text = _LINK.sub(link, text)
    text = _AUTOLINK.sub(lambda m: vault.park(m.group(1)), text)
    return _BARE_URL.sub(bare, text)


def _strip_blocks(text: str) -> str:
    text = _RULE.sub("", text)
    text = _SETEXT_UNDERLINE.sub("", text)
    text = _HEADING.sub(r"\1", text)
    text = _BLOCKQUOTE.sub("", text)
    text = _TABLE_SEPARATOR.sub("", text)
    text = _TABLE_ROW.sub(lambda m: " | ".join(cell.strip() for cell in m.group(1).split("|")), text)
    return _BULLET.sub(r"\1• ", text)


def _strip_emphasis(text: str) -> str:
    for pattern in (_BOLD_STARS, _BOLD_UNDERSCORES, _STRIKE, _ITALIC_STAR, _ITALIC_UNDERSCORE):
        text = pattern.sub(r"\1", text)
    return text


def strip_markdown(text: str) -> str:
    """Remove Markdown syntax, keeping the words, code text and URLs (links become "label (url)")."""
    vault = _Vault()
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace(_OPEN, "").replace(_CLOSE, "")
    text = _FENCED_CODE.sub(lambda m: vault.park(m.group(2).rstrip("\n")), text)
    text = _INLINE_CODE.sub(lambda m: vault.park(m.group(2).strip()), text)
    text = _ESCAPE.sub(lambda m: vault.park(m.group(1)), text)
    text = _protect_links(text, vault)
    text = _strip_emphasis(_strip_blocks(text))
    text = vault.restore(text)
    text = _TRAILING_SPACE.sub("", text)
    return _BLANK_LINES.sub("\n\n", text).strip()


def _hard_cut(text: str, limit: int) -> list[str]:
    """Cut at the last space in the second half of each window, else exactly at the limit."""
    pieces: list[str] = []
    while len(text) > limit:
        cut = text.rfind(" ", limit // 2, limit + 1)
        cut = cut if cut > 0 else limit
        pieces.append(text[:cut].rstrip())
        text = text[cut:].lstrip()
    return [*pieces, text] if text else pieces


def _atoms(text: str, limit: int) -> list[tuple[str, str]]:
    """(separator, piece) pairs, each piece at most `limit` long, coarsest boundary first."""
    atoms: list[tuple[str, str]] = []
    for paragraph in _PARAGRAPH_BREAK.split(text.strip()):
        if len(paragraph) <= limit:
            atoms.append(("\n\n", paragraph))
            continue
        separator = "\n\n"
        parts = _SENTENCE_BREAK.split(paragraph)
        joiners = [m.group(0) for m in _SENTENCE_BREAK.finditer(paragraph)]
        for sentence, joiner in zip(parts, [*joiners, ""], strict=True):
            for index, piece in enumerate(_hard_cut(sentence, limit)):
                atoms.append((separator if index == 0 else " ", piece))
            separator = " " if joiner != "\n" else "\n"
    return [(sep, piece) for sep, piece in atoms if piece]


def _pack(text: str, limit: int) -> list[str]:
    """Greedily pack atoms into bubbles of at most `limit` characters."""
    bubbles: list[str] = []
    current = ""
    for separator, piece in _atoms(text, limit):
        if not current:
            current = piece
        elif len(current) + len(separator) + len(piece) <= limit:
            current += separator + piece
        else:
            bubbles.append(current)
            current = piece
    return [*bubbles, current] if current else bubbles


def split_bubbles(text: str, max_bubbles: int = MAX_OUTPUTS, max_chars: int = MAX_SIMPLE_TEXT_CHARS) -> list[str]:
    """Split text into at most `max_bubbles` bubbles of at most `max_chars`, cutting with CUT_MARKER."""
    if max_bubbles < 1 or max_chars <= len(CUT_MARKER):
        raise ValueError("bubble limits too small")
    bubbles = _pack(text, max_chars)
    if len(bubbles) <= max_bubbles:
        return bubbles
    last = _pack(bubbles[max_bubbles - 1], max_chars - len(CUT_MARKER))[0]
    return [*bubbles[: max_bubbles - 1], last + CUT_MARKER]


def format_answer(text: str) -> list[str]:
    """LLM answer -> plain-text bubbles within Kakao's limits ([] for an empty answer)."""
    return split_bubbles(strip_markdown(text))
