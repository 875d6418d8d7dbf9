"""Benchmark usage accounting on PostgreSQL: what budgets add per task, and statistics over 1,000,000 usage rows.

1. Per task, as the worker does it: the reservation (the budget check, one upsert + the task's mark) and the
   settlement (usage row, counters), one task at a time and with 25 tasks of one bot in flight.
2. Statistics through the admin API over 1,000,000 usage rows made by one INSERT ... SELECT generate_series:
   a past month (rolled up), a week and a day still read from the raw rows, and the rollup itself.

    python -m bench.usage [--tasks 2000] [--rows 1000000] [--users 2000]
"""

import argparse
import asyncio
import statistics
import time
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import httpx

from app.db import Database
from app.main import create_app
from app.models import utcnow
from app.services.usage import ModelCall, UsageService
from app.services.usage.periods import local_day
from app.services.usage.rollup import roll_up
from bench.common import percentile, throwaway_database
from tests.conftest import ADMIN_TOKEN, make_settings

TASKS_SQL = """
WITH u AS (
    INSERT INTO appuser (bot_id, kakao_user_id, name_mode, created_at, last_seen_at)
    VALUES ('bench-bot', 'bench-user', false, $1, $1) RETURNING id
),
c AS (INSERT INTO conversation (user_id, started_at, last_message_at) SELECT id, $1, $1 FROM u RETURNING id, user_id),
m AS (
    INSERT INTO message (conversation_id, user_id, role, text, created_at)
    SELECT id, user_id, 'user', '질문', $1 FROM c RETURNING id, conversation_id, user_id
)
INSERT INTO aiprocessingtask (id, bot_id, user_id, conversation_id, message_id, status, attempts, max_attempts,
                              run_after, callback_status, input_tokens, output_tokens, reserved_tokens, created_at)
SELECT gen_random_uuid(), 'bench-bot', m.user_id, m.conversation_id, m.id, 'processing', 1, 3, $1, 'none', 0, 0, 0, $1
FROM m, generate_series(1, $2)
RETURNING id, user_id
"""

USERS_SQL = """
INSERT INTO appuser (bot_id, kakao_user_id, name_mode, created_at, last_seen_at)
SELECT 'bot-' || (g % 3), 'user-' || g, false, $1, $1 FROM generate_series(1, $2) g
RETURNING id
"""

# Spread over [$1, $1 + $2 seconds): three bots, `$4` users from id $3, three models (one call in 20 a cache hit).
ROWS_SQL = """
INSERT INTO usagerecord (created_at, day, kind, bot_id, user_id, model, input_tokens, output_tokens, total_tokens,
                         cost_usd, input_usd_per_million, output_usd_per_million, latency_ms, cache_hit)
SELECT ts, (ts AT TIME ZONE 'Asia/Seoul')::date, 'answer', 'bot-' || (g % 3), $3 + (g % $4),
       (ARRAY['gpt-4o', 'gpt-4o-mini', 'text-embedding-3-small'])[1 + g % 3],
       500 + g % 700, 100 + g % 300, 600 + g % 700 + g % 300,
       ((500 + g % 700) * 2.5 + (100 + g % 300) * 10.0) / 1000000.0, 2.5, 10.0, 800, g % 20 = 0
FROM generate_series(1, $5) g, LATERAL (SELECT $1::timestamptz + make_interval(secs => (g::float8 * $2 / $5))) t(ts)
"""


async def per_task(url: str, tasks: int) -> None:
    settings = make_settings(url, user_monthly_token_limit=10**12, bot_monthly_token_limit=10**12)
    db = Database(settings)
    usage = UsageService(settings, db)
    pool = await db.raw_pool()
    rows = await pool.fetch(TASKS_SQL, utcnow(), tasks + 2 * 25 * 40)
    ids = [(r["id"], r["user_id"]) for r in rows]
    first_user = (await pool.fetch(USERS_SQL, utcnow(), 25))[0]["id"]
    call = [ModelCall("answer", "gpt-4o", 1200, 300, latency_ms=900)]

    async def one(task_id, user_id) -> tuple[float, float]:  # type: ignore[no-untyped-def]
        holders = usage.kakao_holders(bot_id="bench-bot", user_id=user_id, is_friend=True)
        started = time.perf_counter()
        reservation = await usage.reserve(holders, tokens=1500, now=utcnow(), bot_id="bench-bot", task_id=task_id)
        reserved = time.perf_counter()
        await usage.settle(reservation, call, now=utcnow(), bot_id="bench-bot", user_id=user_id)
        return reserved - started, time.perf_counter() - reserved

    for task_id, user_id in ids[:50]:  # warm the pools and statement caches
        await one(task_id, user_id)
    baseline = []
    for _ in range(500):
        began = time.perf_counter()
        await pool.fetchval("SELECT 1")
        baseline.append((time.perf_counter() - began) * 1000)
    print(f"  a bare round trip (SELECT 1) for scale: p50 {percentile(baseline, 0.5):.3f} ms"
          f"  p95 {percentile(baseline, 0.95):.3f} ms")
    cpu = time.process_time()
    sequential = [await one(t, u) for t, u in ids[50:tasks]]
    cpu = (time.process_time() - cpu) * 1000 / len(sequential)
    report("one task at a time", sequential)
    print(f"    this process's CPU for both: {cpu:.3f} ms per task (the worker's own cost; the rest is the database)")
    rest = ids[tasks:]
    for label, users in (("25 in flight, 25 users of one bot (its row contended)", range(25)),
                         ("25 in flight, one user (both rows contended)", [0] * 25)):
        batch, rest = rest[: 25 * 40], rest[25 * 40 :]
        started = time.perf_counter()
        concurrent: list[tuple[float, float]] = []
        for i in range(0, len(batch), 25):
            concurrent += await asyncio.gather(*(
                one(t, first_user + users[j]) for j, (t, _) in enumerate(batch[i : i + 25])
            ))
        elapsed = time.perf_counter() - started
        report(label, concurrent)
        print(f"    {len(concurrent) / elapsed:,.0f} tasks/s reserved and settled")
    await db.dispose()


def report(label: str, samples: list[tuple[float, float]]) -> None:
    reserve = [r * 1000 for r, _ in samples]
    settle = [s * 1000 for _, s in samples]
    print(f"  {label} ({len(samples)} tasks):")
    for name, values in (("reserve (budget check)", reserve), ("settle (usage row + counters)", settle)):
        print(f"    {name:30} p50 {percentile(values, 0.5):.3f} ms  p95 {percentile(values, 0.95):.3f} ms"
              f"  mean {statistics.fmean(values):.3f} ms")


async def statistics_over(url: str, rows: int, users: int) -> None:
    settings = make_settings(url, db_statement_timeout_ms=0)  # the bulk insert and the raw-row month take longer
    tz = ZoneInfo(settings.usage_timezone)
    db = Database(settings)
    pool = await db.raw_pool()
    today = local_day(utcnow(), tz)
    last_month_end = today.replace(day=1)
    last_month = (last_month_end - timedelta(days=1)).replace(day=1)
    start = datetime.combine(last_month, datetime.min.time(), tzinfo=tz).astimezone(UTC)
    first_user = (await pool.fetch(USERS_SQL, utcnow(), users))[0]["id"]
    # 29/30 of the rows in last month, the rest today (not rolled up yet: read raw).
    month_seconds = (datetime.combine(last_month_end, datetime.min.time(), tzinfo=tz).astimezone(UTC)
                     - start).total_seconds()
    today_rows = rows // 30
    began = time.perf_counter()
    await pool.execute(ROWS_SQL, start, month_seconds, first_user, users, rows - today_rows)
    today_start = datetime.combine(today, datetime.min.time(), tzinfo=tz).astimezone(UTC)
    seconds_today = max((utcnow() - today_start).total_seconds() - 1, 1)
    await pool.execute(ROWS_SQL, today_start, seconds_today, first_user, users, today_rows)
    await pool.execute("ANALYZE usagerecord")
    print(f"  {rows:,} usage rows ({users:,} users, 3 bots, 3 models) inserted in {time.perf_counter() - began:.1f} s")

    app = create_app(settings)
    headers = {"authorization": f"Bearer {ADMIN_TOKEN}"}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bench") as client:

        async def timed(label: str, params: dict[str, str], runs: int = 5) -> None:
            times = []
            for _ in range(runs):
                began = time.perf_counter()
                response = await client.get("/admin/usage/statistics", params=params, headers=headers)
                times.append((time.perf_counter() - began) * 1000)
                assert response.status_code == 200, response.text
            body = response.json()
            print(f"  {label:48} min {min(times):7.1f} ms  median {statistics.median(times):7.1f} ms"
                  f"  ({body['requests']:,} requests)")

        month = {"period": "month", "date": last_month.isoformat()}
        await timed("last month, before the rollup (raw rows)", month, runs=1)
        began = time.perf_counter()
        days = await roll_up(db.engine, now=utcnow(), tz=tz)
        print(f"  rollup of {len(days)} days: {time.perf_counter() - began:.1f} s")
        await pool.execute("ANALYZE usagedaily")
        daily = await pool.fetchval("SELECT count(*) FROM usagedaily")
        print(f"  usagedaily rows: {daily:,}")
        await timed("last month, rolled up", month)
        await timed("last month, one bot", {**month, "bot_id": "bot-1"})
        await timed("this week (rolled days + today's raw rows)", {"period": "week"})
        await timed("today (raw rows)", {"period": "day"})
        users_began = time.perf_counter()
        response = await client.get("/admin/usage/users", params=month, headers=headers)
        print(f"  /admin/usage/users, last month: {(time.perf_counter() - users_began) * 1000:.1f} ms"
              f" ({len(response.json()['items'])} users)")
    await app.state.db.dispose()
    await db.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=2000)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--users", type=int, default=2000)
    args = parser.parse_args()
    print("Budget check and settlement per task (PostgreSQL):")
    with throwaway_database("bench_usage") as url:
        asyncio.run(per_task(url, args.tasks))
    print(f"Statistics over {args.rows:,} usage rows (PostgreSQL):")
    with throwaway_database("bench_usage") as url:
        asyncio.run(statistics_over(url, args.rows, args.users))


if __name__ == "__main__":
    main()
