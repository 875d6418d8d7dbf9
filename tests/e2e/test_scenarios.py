"""Process-level reliability scenarios (real API and worker processes, PostgreSQL, local fakes).

The CI sizes run in `make test`; the `heavy` ones are the same scenarios with bigger numbers
(`pytest -m heavy tests/e2e`, or `python -m bench.chaos` for the table in docs/reliability.md).
"""

from pathlib import Path

import pytest

from tests.e2e import scenarios
from tests.e2e.harness import Report, pg_bin


def check(report: Report) -> None:
    print(report.summary())
    assert report.ok, report.summary()
    assert (report.lost, report.duplicates, report.wrong_user) == (0, 0, 0)


async def test_interleaved_users(pg_url: str, tmp_path: Path) -> None:
    check(await scenarios.interleaved_users(pg_url, tmp_path, users=60, messages=3))


async def test_worker_sigkill_mid_load(pg_url: str, tmp_path: Path) -> None:
    # The load must outlast both kills: a replacement worker takes several seconds to start on a busy 2-core box.
    report = await scenarios.worker_kills(pg_url, tmp_path, users=30, messages=3, kills=2, rate=4.0)
    check(report)
    assert report.details["reclaim_max_s"] < 10


async def test_sigkill_during_send(pg_url: str, tmp_path: Path) -> None:
    report = await scenarios.kill_during_send(pg_url, tmp_path, users=30, messages=2, kills=2, held=4)
    check(report)
    assert report.details["held_posts"] == 8 and report.details["kept_for_next_message"] == 0


async def test_llm_faults(pg_url: str, tmp_path: Path) -> None:
    report = await scenarios.llm_faults(pg_url, tmp_path, users=30, messages=3)
    check(report)
    assert report.details["missing_callbacks"] == 0


async def test_callback_peer_down_or_slow(pg_url: str, tmp_path: Path) -> None:
    check(await scenarios.callback_peer_trouble(pg_url, tmp_path, users=10))


async def test_sigterm_under_load(pg_url: str, tmp_path: Path) -> None:
    check(await scenarios.sigterm_under_load(pg_url, tmp_path, users=24, messages=2))


async def test_two_apis_two_workers(pg_url: str, tmp_path: Path) -> None:
    check(await scenarios.two_by_two(pg_url, tmp_path, users=30, messages=3))


@pytest.mark.skipif(pg_bin() is None, reason="initdb/pg_ctl not found (set PG_BIN)")
async def test_postgres_restart(tmp_path: Path) -> None:
    report = await scenarios.postgres_restart(tmp_path, users=20, messages=3, restarts=2)
    check(report)
    assert report.details["max_reply_s"] < 5


@pytest.mark.heavy
async def test_thousand_users(pg_url: str, tmp_path: Path) -> None:
    check(await scenarios.interleaved_users(pg_url, tmp_path, users=1000, messages=3, log_level="INFO"))


async def test_task_that_kills_every_worker_still_gets_an_apology(pg_url: str, tmp_path: Path) -> None:
    report = await scenarios.poison_task(pg_url, tmp_path, messages=2)
    check(report)
    assert report.details["apologies"] == 2


async def test_overload_every_promised_callback_is_kept(pg_url: str, tmp_path: Path) -> None:
    """300 messages at once against 20 slots and a 6 s window: the full-size run (3,000, 200 slots, 50 s) is in
    `make chaos`."""
    env = {"WORKER_CONCURRENCY": "20", "CALLBACK_DEADLINE_SECONDS": "6", "APOLOGY_MARGIN_SECONDS": "1"}
    report = await scenarios.overload(pg_url, tmp_path, users=300, concurrency=16, env=env, log_level="INFO")
    check(report)
    assert report.details["without_callback"] == 0 and report.details["apologised_by_callback"] > 0
