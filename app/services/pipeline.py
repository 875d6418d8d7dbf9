"""The answer pipeline as the worker sees it, and the stand-in used until the real one lands."""

from typing import Protocol

from app.config import Settings
from app.db import Database
from app.queue import ClaimedTask, StoredAnswer

NOT_CONFIGURED_TEXT = "현재 AI 답변 기능이 설정되지 않았어요. 잠시 후 다시 시도해 주세요."


class Answer(StoredAnswer):
    """A finished answer: what is stored, plus how it is shown in Kakao."""

    quick_replies: list[str] = []


class AnswerPipeline(Protocol):
    """Builds the answer to one claimed task; raises `RetryableError` or `PermanentError` on failure."""

    async def answer(self, task: ClaimedTask, *, timeout: float) -> Answer: ...


class OfflinePipeline:
    """Answers every message with a notice that AI answers are not configured."""

    async def answer(self, task: ClaimedTask, *, timeout: float) -> Answer:
        return Answer(text=NOT_CONFIGURED_TEXT)


def build_pipeline(settings: Settings, db: Database) -> AnswerPipeline:
    """The pipeline a worker process runs."""
    return OfflinePipeline()
