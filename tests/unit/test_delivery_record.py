"""A callback's outcome is recorded even when the database is briefly unreachable right after the POST.

Found by the chaos suite (PostgreSQL restarted mid-load): the POST reached Kakao, recording `sent` failed,
and the answer stayed owed, so the user would have been given it a second time on their next message.
"""

import uuid
from datetime import timedelta

import httpx
import pytest
import respx

from app.config import Settings
from app.models import CallbackStatus, utcnow
from app.queue import ClaimedTask
from worker import delivery
from worker.delivery import CallbackKind, Delivery

URL = "https://bot-api.kakao.com/v1/bots/b/callback/record-token-123"
SUCCESS = {"taskId": "t", "status": "SUCCESS", "message": "OK", "timestamp": 0}


class FlakyStore:
    """Refuses the first `failures` writes like a restarting database, then works."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.moves: list[tuple[str, str]] = []

    async def move_callback(self, task_id, *, from_, to, sender, error=None, delivered_at=None,  # type: ignore[no-untyped-def]
                            lease_until=None, kind=None) -> bool:
        if self.failures:
            self.failures -= 1
            raise ConnectionRefusedError("database restarting")
        self.moves.append((from_, to))
        return True


def _task() -> ClaimedTask:
    now = utcnow()
    return ClaimedTask(
        id=uuid.uuid4(), bot_id="b", user_id=1, conversation_id=1, message_id=1, block_name=None, attempts=1,
        max_attempts=3, callback_url=URL, callback_not_before=now, callback_deadline=now + timedelta(seconds=30),
        callback_status=CallbackStatus.SENDING, created_at=now, started_at=now,
    )


@pytest.fixture(autouse=True)
def quick_pauses(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(delivery, "_RECORD_PAUSES", (0.01, 0.01, 0.01))


async def _send(store: FlakyStore) -> CallbackStatus | None:
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    async with httpx.AsyncClient() as http:
        with respx.mock() as kakao:
            route = kakao.post(URL).respond(200, json=SUCCESS)
            result = await Delivery(settings, store, http, worker_id="w").send(  # type: ignore[arg-type]
                _task(), {"version": "2.0", "template": {"outputs": [{"simpleText": {"text": "답"}}]}},
                kind=CallbackKind.ANSWER, taken=True,
            )
    assert route.call_count == 1  # never a second POST
    return result


async def test_sent_is_recorded_after_the_database_comes_back() -> None:
    store = FlakyStore(failures=2)
    assert await _send(store) == CallbackStatus.SENT
    assert store.moves == [(CallbackStatus.SENDING, CallbackStatus.SENT)]


async def test_a_long_outage_still_raises_after_the_bounded_retries() -> None:
    with pytest.raises(ConnectionRefusedError):
        await _send(FlakyStore(failures=10))
