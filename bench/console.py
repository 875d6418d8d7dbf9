"""How long the console's dashboard takes to compute over a busy day, on PostgreSQL and SQLite.

Fills a fresh database with N tasks spread over the last 24 hours (mixed statuses and callback outcomes), then
times GET /console/dashboard/panel (what the page fetches every 10 s) in-process, logged in.

    python -m bench.console [--tasks 1000 10000 50000] [--runs 10]
"""

import argparse
import asyncio
import random
import statistics
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path

import httpx
from sqlalchemy import insert

from app.main import create_app
from app.models import AIProcessingTask, AppUser, Conversation, Message, utcnow
from bench.common import throwaway_database
from tests.conftest import ADMIN_TOKEN, make_settings, migrate

STATUSES = ["completed"] * 90 + ["failed"] * 3 + ["pending"] * 5 + ["processing"] * 2
CALLBACKS = ["sent"] * 85 + ["failed"] * 5 + ["expired"] * 5 + ["none"] * 5


async def fill(url: str, count: int) -> None:
    app = create_app(make_settings(url))
    now = utcnow()
    async with app.state.db.sessions.begin() as session:
        user = (await session.execute(insert(AppUser).values(
            bot_id="bench", kakao_user_id="u", name_mode=False, created_at=now, last_seen_at=now
        ).returning(AppUser.id))).scalar_one()
        conv = (await session.execute(insert(Conversation).values(
            user_id=user, started_at=now, last_message_at=now
        ).returning(Conversation.id))).scalar_one()
        for start in range(0, count, 5000):
            size = min(5000, count - start)
            messages = (await session.execute(insert(Message).returning(Message.id), [
                {"conversation_id": conv, "user_id": user, "role": "user", "text": "질문", "created_at": now}
                for _ in range(size)
            ])).scalars().all()
            rows = []
            for message_id in messages:
                created = now - timedelta(seconds=random.uniform(0, 86_000))
                status = random.choice(STATUSES)
                done = status in ("completed", "failed")
                rows.append({
                    "id": uuid.uuid4(), "bot_id": "bench", "user_id": user, "conversation_id": conv,
                    "message_id": message_id, "status": status, "attempts": 1, "max_attempts": 3,
                    "run_after": created, "created_at": created,
                    "started_at": created + timedelta(seconds=random.uniform(0.001, 0.5)),
                    "completed_at": created + timedelta(seconds=random.uniform(1, 8)) if done else None,
                    "callback_status": random.choice(CALLBACKS), "input_tokens": 300, "output_tokens": 80,
                })
            await session.execute(insert(AIProcessingTask), rows)
    await app.state.db.dispose()


async def measure(url: str, runs: int) -> list[float]:
    app = create_app(make_settings(url))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bench") as client:
        assert (await client.post("/console/login", data={"token": ADMIN_TOKEN})).status_code == 303
        timings = []
        for _ in range(runs):
            started = time.perf_counter()
            response = await client.get("/console/dashboard/panel")
            timings.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200
    await app.state.db.dispose()
    return timings


def report(name: str, count: int, timings: list[float]) -> None:
    print(f"{name:<10} {count:>7} tasks: panel p50 {statistics.median(timings):7.1f} ms, max {max(timings):7.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, nargs="+", default=[1000, 10000, 50000])
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    for count in args.tasks:
        with throwaway_database("bench_console") as url:
            asyncio.run(fill(url, count))
            report("postgresql", count, asyncio.run(measure(url, args.runs)))
        with tempfile.TemporaryDirectory() as folder:
            url = f"sqlite+aiosqlite:///{Path(folder) / 'bench.db'}"
            migrate(url)
            asyncio.run(fill(url, count))
            report("sqlite", count, asyncio.run(measure(url, args.runs)))


if __name__ == "__main__":
    main()
