"""Where Chroma lives: a folder by default, a server when CHROMA_HOST is set (checked without a server)."""

from pathlib import Path
from typing import Any

import chromadb
import pytest

from app.services.knowledge import KnowledgeBase
from app.services.knowledge.base import Chunk
from app.services.knowledge.store import (
    ChromaTarget,
    VectorStore,
    chroma_target,
    collection_name,
    connect,
)
from tests.unit.knowledge.conftest import kb_settings


@pytest.mark.parametrize(
    ("host", "target"),
    [
        ("chroma", ChromaTarget(host="chroma", port=8000)),
        ("chroma:8001", ChromaTarget(host="chroma", port=8001)),
        ("http://10.0.0.5:9000", ChromaTarget(host="10.0.0.5", port=9000)),
        ("https://chroma.example.com", ChromaTarget(host="chroma.example.com", port=443, ssl=True)),
    ],
)
def test_chroma_host_forms(tmp_path: Path, host: str, target: ChromaTarget) -> None:
    assert chroma_target(kb_settings(tmp_path, chroma_host=host)) == target


def test_http_client_mode_builds_an_http_client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(chromadb, "HttpClient", lambda **kwargs: calls.append(kwargs) or "http-client")
    monkeypatch.setattr(chromadb, "PersistentClient", lambda **kwargs: pytest.fail("folder client in server mode"))
    store = VectorStore(kb_settings(tmp_path, chroma_host="chroma:8000"))
    assert store.client == "http-client"
    assert store.client == "http-client"  # connected once
    (call,) = calls
    assert (call["host"], call["port"], call["ssl"]) == ("chroma", 8000, False)
    assert call["settings"].anonymized_telemetry is False
    assert not (tmp_path / "chroma").exists()


def test_embedded_mode_uses_the_folder(tmp_path: Path) -> None:
    client = connect(chroma_target(kb_settings(tmp_path)))
    assert (tmp_path / "chroma").is_dir()
    assert client.get_settings().anonymized_telemetry is False
    assert client.get_settings().is_persistent


def test_collection_names_are_valid_and_distinct() -> None:
    names = {collection_name(bot, "local-hash1024-v1") for bot in ["a", "A", "봇 하나", "x" * 300, "a/b"]}
    assert len(names) == 5
    assert all(3 <= len(n) <= 512 and n[0].isalnum() and n[-1].isalnum() for n in names)
    assert collection_name("a", "local") != collection_name("a", "openai-text-embedding-3-small")


@pytest.mark.usefixtures("kiwi")
async def test_refreshing_a_bots_collection_keeps_the_index_a_search_loaded(tmp_path: Path) -> None:
    """A refresh (once a second, or by a background task) must not drop the lexical index another search just
    built: each would rebuild it, 0.7 s for 10,000 chunks."""
    kb = KnowledgeBase(kb_settings(tmp_path))
    await kb.add("bot", [Chunk("d:1:0", "배송은 2~3일 걸려요.", {"doc_id": "d", "type": "text"})])
    state = await kb._state("bot", create=False)
    assert state is not None
    loaded = await kb._corpus("bot", state)
    state.checked_at = 0.0  # stale: the next lookup asks Chroma again
    again = await kb._state("bot", create=False)
    assert again is state and again.corpus is loaded
    assert await kb._corpus("bot", again) is loaded
    await kb.aclose()
