"""Benchmark the answer queue on PostgreSQL; prints every number the worker issue asks for.

1. Bare queue cycle (enqueue, claim, complete no-op tasks) next to pgqueuer's no-op drain, same database.
2. Pickup latency on an idle queue: enqueue commit to claim, through LISTEN/NOTIFY.
3. End-to-end throughput of one real worker with an instant local LLM fake and a local callback receiver,
   for three pipelines: an in-process instant answer, one call through the LLM client, the full pipeline.
4. With a 5-second LLM fake (full pipeline): tasks in flight in one worker process, callbacks inside the deadline.

    python -m bench.queue [--tasks 5000] [--e2e-tasks 3000] [--slow-tasks 400]
"""

import argparse
import asyncio
import os
import sys
import time
import uuid
from datetime import timedelta

import asyncpg
import httpx
from sqlalchemy import func, select

from app.config import Settings
from app.db import Database, pg_dsn
from app.logs import setup_logging
from app.models import AIProcessingTask, CallbackStatus, TaskStatus, utcnow
from app.queue import ClaimedTask, StoredAnswer, enqueue
from app.queue.sql import ENQUEUE_SQL
from app.services.llm import ChatMessage, LLMClient
from app.services.pipeline import Answer, AnswerPipeline, build_pipeline
from bench.common import ROOT, percentile, server, throwaway_database
from tests.fake_services import free_port
from worker.runtime import Worker
from worker.store import QueueStore

MESSAGE_SQL = """
WITH u AS (
    INSERT INTO appuser (bot_id, kakao_user_id, name_mode, created_at, last_seen_at)
    VALUES ('bench', $1, false, $2, $2) RETURNING id
),
c AS (INSERT INTO conversation (user_id, started_at, last_message_at) SELECT id, $2, $2 FROM u RETURNING id, user_id),
m AS (
    INSERT INTO message (conversation_id, user_id, role, text, created_at)
    SELECT id, user_id, 'user', '환불 규정 알려줘', $2 FROM c RETURNING id, conversation_id, user_id
)
SELECT user_id, conversation_id, id FROM m
"""


async def make_message(db: Database, *, kakao_user_id: str = "bench-user") -> tuple[int, int, int]:
    """(user_id, conversation_id, message_id) of a fresh user message to hang tasks on."""
    pool = await db.raw_pool()
    row = await pool.fetchrow(MESSAGE_SQL, kakao_user_id, utcnow())
    return row["user_id"], row["conversation_id"], row["id"]


def bench_settings(url: str, fake_port: int, llm_delay: float = 0.0, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "database_url": url,
        "log_level": "WARNING",
        "openai_api_key": "sk-bench-not-a-real-key",
        "openai_base_url": f"http://127.0.0.1:{fake_port}/llm/{llm_delay}/v1",
        "kakao_callback_allowed_hosts": ["127.0.0.1"],
        "kakao_callback_allow_http": True,
        "db_pool_timeout": 60,
        # Every bench task asks the same question: with the response cache on, all but one would be cache hits.
        "response_cache_ttl_seconds": 0,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


class NoopPipeline:
    llm = None

    async def answer(self, task: ClaimedTask, *, timeout: float) -> Answer:
        return Answer(text="ok")


class FakeLLMPipeline:
    """One real Chat Completions call per task through the project's LLM client (the fake server answers)."""

    def __init__(self, settings: Settings) -> None:
        self.llm = LLMClient(settings)

    async def answer(self, task: ClaimedTask, *, timeout: float) -> Answer:
        result = await self.llm.complete([ChatMessage(role="user", content="안녕하세요")], timeout=timeout)
        return Answer(text=result.text, input_tokens=result.input_tokens, output_tokens=result.output_tokens)


async def enqueue_many(db: Database, n: int, *, callback_base: str | None = None) -> None:
    """One transaction per task, as the skill endpoint does."""
    user_id, conversation_id, message_id = await make_message(db, kakao_user_id=f"bench-{time.monotonic_ns()}")
    for i in range(n):
        now = utcnow()
        async with db.sessions.begin() as session:
            await enqueue(
                session, bot_id="bench", user_id=user_id, conversation_id=conversation_id, message_id=message_id,
                now=now, max_attempts=3,
                callback_url=f"{callback_base}/{i}" if callback_base else None,
                callback_not_before=now + timedelta(seconds=1) if callback_base else None,
                callback_deadline=now + timedelta(seconds=50) if callback_base else None,
            )


# --- 1. bare cycle ---------------------------------------------------------------------------------


async def ours_bare_cycle(url: str, fake_port: int, n: int, consumers: int = 4) -> tuple[float, float]:
    """(cycle tasks/s, drain tasks/s): enqueue one task per statement, then the worker's claim and store calls."""
    db = Database(bench_settings(url, fake_port))
    store = QueueStore(db)
    user_id, conversation_id, message_id = await make_message(db)
    pool = await db.raw_pool()
    started = time.perf_counter()
    for _ in range(n):
        await pool.execute(ENQUEUE_SQL, uuid.uuid4(), "bench", user_id, conversation_id, message_id, utcnow())
    drain_started = time.perf_counter()

    async def consume(name: str) -> None:
        while tasks := await store.claim(worker_id=name, limit=50, now=utcnow(), lease_seconds=15):
            for task in tasks:
                await store.complete(task, worker_id=name, answer=StoredAnswer(text="ok"), now=utcnow())

    await asyncio.gather(*(consume(f"bench-{i}") for i in range(consumers)))
    ended = time.perf_counter()
    await db.dispose()
    return n / (ended - started), n / (ended - drain_started)


async def pgqueuer_cycle(url: str, n: int) -> tuple[float, float]:
    """(cycle tasks/s, drain tasks/s) of pgqueuer: enqueue one job per call, then a no-op drain."""
    from pgqueuer.db import AsyncpgDriver
    from pgqueuer.qm import QueueManager
    from pgqueuer.queries import Queries
    from pgqueuer.types import QueueExecutionMode

    conn = await asyncpg.connect(pg_dsn(url))
    await Queries(AsyncpgDriver(conn)).install()
    await conn.close()
    conn = await asyncpg.connect(pg_dsn(url))
    driver = AsyncpgDriver(conn)
    queries = Queries(driver)
    started = time.perf_counter()
    for _ in range(n):
        await queries.enqueue("noop", None)
    drain_started = time.perf_counter()
    manager = QueueManager(queries)

    @manager.entrypoint("noop")
    async def noop(job: object) -> None:
        return None

    await manager.run(mode=QueueExecutionMode.drain)
    ended = time.perf_counter()
    await conn.close()
    return n / (ended - started), n / (ended - drain_started)


# --- 2. pickup latency ---------------------------------------------------------------------------


async def pickup_latency(url: str, fake_port: int, samples: int = 300) -> list[float]:
    """Milliseconds from enqueue to claim, one task at a time on an otherwise idle queue."""
    settings = bench_settings(url, fake_port, worker_poll_seconds=30)  # the poll must not be what wakes it
    db = Database(settings)
    async with Worker(settings, db, NoopPipeline()) as worker:
        while not (worker.listener and worker.listener.connected):
            await asyncio.sleep(0.01)
        for _ in range(samples):
            await enqueue_many(db, 1)
            await asyncio.sleep(0.01)
    async with db.sessions() as session:
        rows = (await session.execute(select(AIProcessingTask.created_at, AIProcessingTask.started_at))).all()
    await db.dispose()
    return [(started - created).total_seconds() * 1000 for created, started in rows]


# --- 3. and 4. through the real worker -----------------------------------------------------------

PIPELINES = {
    "instant": "answer returned in-process (queue + delivery only)",
    "llm-client": "one Chat Completions call through the project's LLM client",
    "full": "the full answer pipeline (memory, template, LLM client, prompt log)",
}


def make_pipeline(kind: str, settings: Settings, db: Database) -> AnswerPipeline:
    if kind == "instant":
        return NoopPipeline()
    if kind == "llm-client":
        return FakeLLMPipeline(settings)
    return build_pipeline(settings, db)


async def through_worker(
    url: str, fake_port: int, n: int, *, pipeline: str, llm_delay: float, concurrency: int
) -> dict[str, float]:
    """Pre-fill `n` callback tasks, then time one in-process worker until every callback is settled."""
    settings = bench_settings(url, fake_port, llm_delay, worker_concurrency=concurrency)
    db = Database(settings)
    await enqueue_many(db, n, callback_base=f"http://127.0.0.1:{fake_port}/v1/bots/bench/callback")
    async with httpx.AsyncClient() as client:
        received_before = (await client.get(f"http://127.0.0.1:{fake_port}/stats")).json()["callbacks"]
    peak = 0
    started = time.perf_counter()
    cpu = time.process_time()
    async with Worker(settings, db, make_pipeline(pipeline, settings, db)) as worker:
        worker.wakeup.notify()
        open_callbacks = AIProcessingTask.callback_status.in_([CallbackStatus.PENDING, CallbackStatus.SENDING])
        while await _count(db, open_callbacks) > 0:
            peak = max(peak, worker.pool.in_flight)
            await asyncio.sleep(0.05)
        elapsed = time.perf_counter() - started
        cpu_ms = (time.process_time() - cpu) * 1000 / n
    result = {
        "rate": n / elapsed,
        "elapsed": elapsed,
        "cpu_ms": cpu_ms,
        "peak": peak,
        "completed": await _count(db, AIProcessingTask.status == TaskStatus.COMPLETED),
        "in_time": await _count(db, AIProcessingTask.answer_delivered_at <= AIProcessingTask.callback_deadline),
    }
    await db.dispose()
    async with httpx.AsyncClient() as client:
        result["received"] = (await client.get(f"http://127.0.0.1:{fake_port}/stats")).json()["callbacks"] - received_before
    return result


async def _count(db: Database, condition: object) -> int:
    async with db.sessions() as session:
        return (await session.execute(select(func.count()).where(condition))).scalar_one()  # type: ignore[arg-type]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=5000)
    parser.add_argument("--e2e-tasks", type=int, default=3000)
    parser.add_argument("--slow-tasks", type=int, default=400)
    parser.add_argument("--concurrency", type=int, default=Settings.model_fields["worker_concurrency"].default)
    args = parser.parse_args()
    setup_logging(bench_settings("sqlite://", 0))
    port = free_port()
    fake = [sys.executable, "-m", "uvicorn", "bench.fakes:app", "--port", str(port), "--log-level", "warning",
            "--no-access-log", "--loop", "uvloop", "--http", "httptools"]
    e2e: dict[str, dict[str, float]] = {}
    with server(fake, {"PYTHONPATH": str(ROOT)}, port):
        with throwaway_database("bench_queue") as url:
            ours, ours_drain = asyncio.run(ours_bare_cycle(url, port, args.tasks))
        with throwaway_database("bench_pgq") as url:
            theirs, theirs_drain = asyncio.run(pgqueuer_cycle(url, args.tasks))
        with throwaway_database("bench_pickup") as url:
            pickups = asyncio.run(pickup_latency(url, port))
        for kind in PIPELINES:
            with throwaway_database("bench_e2e") as url:
                e2e[kind] = asyncio.run(
                    through_worker(url, port, args.e2e_tasks, pipeline=kind, llm_delay=0.0, concurrency=args.concurrency)
                )
        with throwaway_database("bench_slow") as url:
            slow = asyncio.run(
                through_worker(url, port, args.slow_tasks, pipeline="full", llm_delay=5.0, concurrency=args.concurrency)
            )

    print(f"PostgreSQL on this machine ({os.cpu_count()} cores), one worker process, concurrency {args.concurrency}")
    print(f"1. bare queue cycle, {args.tasks} no-op tasks (enqueue one per statement, claim in batches, store each)")
    print(f"   ours:     {ours:7.0f} tasks/s   (claim + store only: {ours_drain:7.0f} tasks/s)")
    print(f"   pgqueuer: {theirs:7.0f} tasks/s   (no-op drain only:   {theirs_drain:7.0f} tasks/s)")
    print(f"   ratio ours/pgqueuer: cycle {ours / theirs:.2f}, drain {ours_drain / theirs_drain:.2f}  (target >= 0.5)")
    print(f"2. pickup latency on an idle queue, enqueue to claim, {len(pickups)} samples: "
          f"p50 {percentile(pickups, 0.5):.1f} ms, p99 {percentile(pickups, 0.99):.1f} ms  (targets < 5 ms, < 50 ms)")
    print(f"3. end to end, {args.e2e_tasks} tasks, instant LLM fake + local callback receiver (target >= 300 tasks/s)")
    for kind, r in e2e.items():
        print(f"   {kind:10} {r['rate']:5.0f} tasks/s, worker CPU {r['cpu_ms']:.1f} ms/task, "
              f"{r['completed']:.0f} completed, {r['received']:.0f} callbacks  - {PIPELINES[kind]}")
    print(f"4. 5 s LLM fake, full pipeline, {args.slow_tasks} tasks: peak {slow['peak']:.0f} in flight in one worker "
          f"(target >= 200); {slow['in_time']:.0f}/{args.slow_tasks} callbacks inside the deadline, "
          f"{slow['elapsed']:.1f} s in all")


if __name__ == "__main__":
    main()
