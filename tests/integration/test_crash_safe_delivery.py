"""A callback POST whose worker died before recording its outcome (`sending` at reclaim) is sent once more.

Found by the chaos suite (API and worker processes, the worker SIGKILLed twice): one task stayed
completed + `sending` with no POST ever made, and its user waited forever. Kakao's URL is single-use, so a
repeat of a POST that did arrive is refused, and that refusal counts as delivered.
"""

import json
from datetime import timedelta

import httpx
import pytest
import respx

from app.config import Settings
from app.db import Database
from app.models import CallbackKind, CallbackStatus, TaskStatus, utcnow
from app.queue import (
    StoredAnswer,
    autocommit,
    claim,
    complete,
    move_callback,
    take_orphaned_callbacks,
    take_pending_answers,
)
from tests.queue_helpers import (
    CALLBACK_URL,
    KAKAO_SUCCESS,
    FakePipeline,
    add_task,
    eventually,
    load,
    make_message,
    worker_settings,
)
from worker.runtime import Worker

ANSWER = "저장된 답변입니다"
INVALID_TOKEN = {"taskId": "t", "status": "FAIL", "message": "Invalid callback token. Check your callback token."}
INVALID_JSON = {"taskId": "t", "status": "FAIL", "message": "Invalid json response from bot-skill."}


@pytest.fixture
def settings(database_url: str) -> Settings:
    return worker_settings(database_url)


async def _died_after_storing(  # type: ignore[no-untyped-def]
    db: Database, *, user: str = "user-1", deadline_seconds: float = 50.0, kind: CallbackKind = CallbackKind.ANSWER
):
    """A worker that stored the answer with its callback `sending`, then died: its send lease has run out."""
    ids = await make_message(db, kakao_user_id=user)
    task_id = await add_task(db, ids, callback=True, deadline_seconds=deadline_seconds)
    expired = utcnow() - timedelta(seconds=1)
    async with db.engine.begin() as conn:
        (task,) = await claim(conn, worker_id="dead", limit=1, now=utcnow(), lease_seconds=10)
        assert task.id == task_id
        if kind is CallbackKind.APOLOGY:  # its delay apology was in flight when the answer was stored
            await move_callback(conn, task_id, from_=CallbackStatus.PENDING, to=CallbackStatus.SENDING,
                                sender="dead", lease_until=expired, kind=kind)
        await complete(conn, task, worker_id="dead", answer=StoredAnswer(text=ANSWER), now=utcnow(),
                       send_lease_until=expired)
    row = await load(db, task_id)
    assert (row.status, row.callback_status, row.callback_kind) == (TaskStatus.COMPLETED, "sending", kind)
    return ids[0], task_id


async def _worker_settles(settings: Settings, db: Database, task_id) -> None:  # type: ignore[no-untyped-def]
    async def moved() -> bool:
        return (await load(db, task_id)).callback_status != CallbackStatus.SENDING

    async with Worker(settings, db, FakePipeline()):
        await eventually(moved, timeout=15)


def _posted(route: respx.Route) -> list[str]:
    return [json.loads(c.request.content)["template"]["outputs"][0]["simpleText"]["text"] for c in route.calls]


async def _owed(db: Database, user_id: int) -> list[str]:
    async with db.sessions.begin() as session:
        return await take_pending_answers(session, user_id)


async def test_completed_answer_left_sending_is_posted_once_more(
    settings: Settings, db: Database, kakao: respx.Route
) -> None:
    user_id, task_id = await _died_after_storing(db)
    await _worker_settles(settings, db, task_id)
    assert _posted(kakao) == [ANSWER]
    row = await load(db, task_id)
    assert row.callback_status == CallbackStatus.SENT and row.answer_delivered_at is not None
    assert row.callback_sender not in (None, "dead")
    assert await _owed(db, user_id) == []


@pytest.mark.parametrize("http_status", [200, 400])
async def test_a_repeat_kakao_refuses_as_used_counts_as_delivered(
    settings: Settings, db: Database, http_status: int
) -> None:
    user_id, task_id = await _died_after_storing(db)
    with respx.mock() as mock:
        route = mock.post(CALLBACK_URL).respond(http_status, json=INVALID_TOKEN)
        await _worker_settles(settings, db, task_id)
    assert route.call_count == 1
    row = await load(db, task_id)
    assert row.callback_status == CallbackStatus.SENT and row.answer_delivered_at is not None
    assert row.callback_error.startswith("repeat refused")
    assert await _owed(db, user_id) == []  # the first POST arrived: never given a second time


async def test_a_repeat_refused_for_another_reason_follows_the_usual_rules(settings: Settings, db: Database) -> None:
    user_id, task_id = await _died_after_storing(db)
    with respx.mock() as mock:
        route = mock.post(CALLBACK_URL).respond(200, json=INVALID_JSON)
        await _worker_settles(settings, db, task_id)
    assert route.call_count == 1
    row = await load(db, task_id)
    assert (row.callback_status, row.answer_delivered_at) == (CallbackStatus.FAILED, None)
    assert await _owed(db, user_id) == [ANSWER]


async def test_a_repeat_that_never_left_is_retried_without_giving_up_sending(settings: Settings, db: Database) -> None:
    _, task_id = await _died_after_storing(db)
    with respx.mock() as mock:
        route = mock.post(CALLBACK_URL)
        route.side_effect = [httpx.ConnectError("refused"), httpx.Response(200, json=INVALID_TOKEN)]
        await _worker_settles(settings, db, task_id)
    assert route.call_count == 2
    row = await load(db, task_id)
    assert row.callback_status == CallbackStatus.SENT and row.answer_delivered_at is not None


async def test_past_the_deadline_nothing_is_posted_and_the_answer_is_owed(
    settings: Settings, db: Database, kakao: respx.Route
) -> None:
    user_id, late = await _died_after_storing(db, deadline_seconds=-1)
    _, in_time = await _died_after_storing(db, user="user-2")  # its repeat shows the sweep has run
    await _worker_settles(settings, db, in_time)
    assert kakao.call_count == 1
    assert (await load(db, late)).callback_status == CallbackStatus.SENDING
    assert await _owed(db, user_id) == [ANSWER]  # given on the user's next message


@pytest.mark.parametrize(("kakao_says", "answer_delivered"), [(KAKAO_SUCCESS, True), (INVALID_TOKEN, False)])
async def test_a_lost_apology_is_repeated_with_the_answer_but_a_refusal_proves_only_the_apology(
    settings: Settings, db: Database, kakao_says: dict, answer_delivered: bool  # type: ignore[type-arg]
) -> None:
    user_id, task_id = await _died_after_storing(db, kind=CallbackKind.APOLOGY)
    with respx.mock() as mock:
        route = mock.post(CALLBACK_URL).respond(200, json=kakao_says)
        await _worker_settles(settings, db, task_id)
    assert _posted(route) == [ANSWER]
    row = await load(db, task_id)
    assert row.callback_status == CallbackStatus.SENT
    assert (row.answer_delivered_at is not None) is answer_delivered
    assert await _owed(db, user_id) == ([] if answer_delivered else [ANSWER])


async def test_a_live_send_is_never_taken_over_and_an_orphan_only_once(db: Database) -> None:
    ids = await make_message(db)
    live = await add_task(db, ids, callback=True)
    orphan = await add_task(db, ids, callback=True)
    mine = await add_task(db, ids, callback=True)
    now = utcnow()
    async with autocommit(db.engine) as conn:
        for task_id, lease in ((live, now + timedelta(seconds=5)), (orphan, now), (mine, now)):
            await move_callback(conn, task_id, from_=CallbackStatus.PENDING, to=CallbackStatus.SENDING,
                                sender="a", lease_until=lease, kind=CallbackKind.ANSWER)
        later = now + timedelta(seconds=1)
        taken = await take_orphaned_callbacks(conn, worker_id="b", now=later, lease_seconds=5, skip=[mine])
        assert [t.id for t in taken] == [orphan]
        assert await take_orphaned_callbacks(conn, worker_id="c", now=later, lease_seconds=5, skip=[mine]) == []
        # The dead sender's late record moves nothing: the send is b's now.
        assert not await move_callback(conn, orphan, from_=CallbackStatus.SENDING, to=CallbackStatus.FAILED,
                                       sender="a")
    row = await load(db, orphan)
    assert (row.callback_sender, row.callback_lease_expires_at) == ("b", later + timedelta(seconds=5))
