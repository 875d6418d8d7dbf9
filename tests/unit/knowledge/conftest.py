"""A knowledge base over a temporary Chroma folder, with no OpenAI key."""

from pathlib import Path

import pytest

from app.config import Settings
from app.services.knowledge import KnowledgeBase
from tests.conftest import make_settings


def kb_settings(tmp_path: Path, **overrides: object) -> Settings:
    return make_settings("sqlite+aiosqlite:///:memory:", chroma_path=str(tmp_path / "chroma"), **overrides)


@pytest.fixture
def kb(tmp_path: Path) -> KnowledgeBase:
    return KnowledgeBase(kb_settings(tmp_path))
