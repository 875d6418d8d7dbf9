"""A knowledge base over a temporary Chroma folder, with no OpenAI key."""

from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from app.config import Settings
from app.services.kiwi import shared_kiwi
from app.services.knowledge import KnowledgeBase
from tests.conftest import make_settings

if TYPE_CHECKING:
    from kiwipiepy import Kiwi


def kb_settings(tmp_path: Path, **overrides: object) -> Settings:
    return make_settings("sqlite+aiosqlite:///:memory:", chroma_path=str(tmp_path / "chroma"), **overrides)


@pytest.fixture
def kb(tmp_path: Path) -> KnowledgeBase:
    return KnowledgeBase(kb_settings(tmp_path))


@pytest.fixture(scope="session")
def kiwi() -> "Kiwi":
    """The process's CoNg analyser, loaded once for the whole session (about 1.5 s)."""
    return shared_kiwi()
