"""Token counts for prompt budgets: tiktoken when its encoding file is cached, else a safe overestimate."""

import hashlib
import math
import os
import re
import tempfile
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol

from loguru import logger

# gpt-4o's encoding. tiktoken downloads it on first use unless it is in the cache; we only ever read the
# cache, after checking the hash ourselves, because a bad file would make tiktoken download it again.
ENCODING = "o200k_base"
_ENCODING_URL = "https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken"
_ENCODING_SHA256 = "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d"

# Chat Completions adds a few tokens per message (role, separators) and 3 to prime the reply.
MESSAGE_OVERHEAD = 4
REPLY_OVERHEAD = 3

_PIECES = re.compile(r"[A-Za-z]+|[0-9]+|\s+|.", re.DOTALL)


class _Message(Protocol):
    content: str


def tiktoken_cache_file() -> Path | None:
    """Where tiktoken keeps the encoding file; the same lookup tiktoken itself does (None: caching off)."""
    cache_dir = os.environ.get("TIKTOKEN_CACHE_DIR", os.environ.get("DATA_GYM_CACHE_DIR"))
    if cache_dir is None:
        cache_dir = os.path.join(tempfile.gettempdir(), "data-gym-cache")
    if not cache_dir:
        return None
    return Path(cache_dir) / hashlib.sha1(_ENCODING_URL.encode()).hexdigest()


@lru_cache(maxsize=1)
def _encoding() -> Any:
    """The tiktoken encoding if its file is cached and intact, else None; never touches the network."""
    try:
        path = tiktoken_cache_file()
        if path is None or not path.is_file():
            logger.info("tiktoken encoding not cached; using conservative token estimates")
            return None
        if hashlib.sha256(path.read_bytes()).hexdigest() != _ENCODING_SHA256:
            logger.warning("tiktoken cache file {} is corrupt; using conservative token estimates", path)
            return None
        import tiktoken

        return tiktoken.get_encoding(ENCODING)
    except Exception as exc:  # noqa: BLE001 - counting must never break an answer
        logger.warning("tiktoken unavailable ({}); using conservative token estimates", exc)
        return None


def estimate_tokens(text: str) -> int:
    """An upper estimate for gpt-4o (and usually gpt-4's cl100k) without any vocabulary."""
    total = 0.0
    for match in _PIECES.finditer(text):
        piece = match.group()
        first = piece[0]
        if first.isascii() and first.isalpha():
            total += math.ceil(len(piece) / 3)
        elif first.isascii() and first.isdigit():
            total += math.ceil(len(piece) / 2)
        elif first.isspace():
            # A single space usually merges into the next token.
            total += 0.3 if piece == " " else 1
        elif "가" <= first <= "힣":
            total += 1.5
        elif "\u3131" <= first <= "\u318e":  # bare jamo (ㅋㅋ, ㅎㅎ) split into byte tokens
            total += 2.5
        elif first.isascii():
            total += 1
        else:
            total += 3 if ord(first) > 0xFFFF else 2
    return math.ceil(total)


def count_tokens(text: str) -> int:
    """Tokens in `text`: exact with a cached tiktoken encoding, otherwise an overestimate."""
    encoding = _encoding()
    if encoding is not None:
        return len(encoding.encode(text, disallowed_special=()))
    return estimate_tokens(text)


def count_messages(messages: Iterable[_Message]) -> int:
    """Prompt tokens a Chat Completions request with these messages uses."""
    return sum(MESSAGE_OVERHEAD + count_tokens(m.content) for m in messages) + REPLY_OVERHEAD
