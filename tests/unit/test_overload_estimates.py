"""The worker's expected answer time and /skill's backlog wait, the two estimates behind the overload rule."""

from datetime import timedelta

from app.models import utcnow
from app.queue.backlog import THROUGHPUT_SECONDS, Backlog
from worker.estimate import ANSWER_FLOOR_SECONDS, AnswerTimeEstimate


def test_answer_time_is_a_moving_average_between_the_floor_and_the_timeout() -> None:
    estimate = AnswerTimeEstimate(ceiling=40.0)
    assert estimate.seconds == ANSWER_FLOOR_SECONDS  # nothing observed yet
    estimate.observe(0.01)
    assert estimate.seconds == ANSWER_FLOOR_SECONDS  # an instant answer never lowers it below the floor
    for _ in range(30):
        estimate.observe(5.0)
    assert 4.9 < estimate.seconds <= 5.0
    estimate.observe(1000.0)
    assert estimate.seconds == 40.0
    now = utcnow()
    assert estimate.cutoff(now, 5.0) == now + timedelta(seconds=45.0)


def test_backlog_wait_is_waiting_tasks_over_recent_throughput() -> None:
    assert Backlog(waiting=0, finished_recently=0).expected_wait == 0.0
    assert Backlog(waiting=10, finished_recently=0).expected_wait is None  # no rate yet: no claim either way
    assert Backlog(waiting=100, finished_recently=int(5 * THROUGHPUT_SECONDS)).expected_wait == 20.0
    # A burst's first two seconds: 100 finished since the first one is 50/s, not 100 over the whole period.
    assert Backlog(waiting=100, finished_recently=100, span=2.0).expected_wait == 2.0
