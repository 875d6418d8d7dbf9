"""Benchmark the response cache on PostgreSQL: worker CPU per task, a cache hit against a model call.

After one warm-up task, one real worker answers pre-filled callback tasks through the full pipeline, with the
instant LLM fake (a separate process, so its CPU is not counted) and the local callback receiver, in three modes:
  off      RESPONSE_CACHE_TTL_SECONDS=0: every task calls the model
  hits     the cache on, every user asks the same first question: one model call, the rest hits
  misses   the cache on, every user asks another question: a lookup and a write on top of each call

    python -m bench.cache [--tasks 2000] [--rounds 3]
"""

import argparse
import asyncio
import os
import sys
import time
from datetime import timedelta

import httpx

from app.config import Settings
from app.db import Database
from app.logs import setup_logging
from app.models import AIProcessingTask, CallbackStatus, TaskStatus, utcnow
from app.services.pipeline import AnswerPipeline, build_pipeline
from bench.common import ROOT, server, throwaway_database
from bench.queue import _count, bench_settings
from tests.fake_services import free_port
from worker.runtime import Worker

MODES = {
    "off": "cache off: a model call per task",
    "hits": "cache on, same question: hits",
    "misses": "cache on, distinct questions: misses",
}

# A new user, conversation, first message and its callback task, in one statement per task.
TASK_SQL = """
WITH u AS (
    INSERT INTO appuser (bot_id, kakao_user_id, name_mode, created_at, last_seen_at)
    VALUES ('bench', $1, false, $3, $3) RETURNING id
),
c AS (INSERT INTO conversation (user_id, started_at, last_message_at) SELECT id, $3, $3 FROM u RETURNING id, user_id),
m AS (
    INSERT INTO message (conversation_id, user_id, role, text, created_at)
    SELECT id, user_id, 'user', $2, $3 FROM c RETURNING id, conversation_id, user_id
)
INSERT INTO aiprocessingtask (
    id, bot_id, user_id, conversation_id, message_id, status, attempts, max_attempts, run_after,
    callback_url, callback_not_before, callback_deadline, callback_status, input_tokens, output_tokens, created_at
)
SELECT gen_random_uuid(), 'bench', user_id, conversation_id, id, 'pending', 0, 3, $3, $4, $3, $5, 'pending', 0, 0, $3
FROM m
"""


PRICE_SQL = """
INSERT INTO usageprice (model, input_usd_per_million, output_usd_per_million, updated_at)
VALUES ('bench-fake', 2.5, 10, now()) ON CONFLICT DO NOTHING
"""


async def fill(db: Database, n: int, *, distinct: bool, callback_base: str, first: int = 0) -> None:
    """`n` first questions of `n` users (numbered from `first`): all the same, or each different."""
    pool = await db.raw_pool()
    for i in range(first, first + n):
        now = utcnow()
        utterance = f"환불 규정 알려줘 {i}" if distinct else "환불 규정 알려줘"
        await pool.execute(TASK_SQL, f"user-{i}", utterance, now, f"{callback_base}/{i}", now + timedelta(seconds=50))


async def drain(settings: Settings, db: Database, pipeline: AnswerPipeline) -> None:
    """Run a worker until every callback is settled."""
    async with Worker(settings, db, pipeline) as worker:
        worker.wakeup.notify()
        open_callbacks = AIProcessingTask.callback_status.in_([CallbackStatus.PENDING, CallbackStatus.SENDING])
        while await _count(db, open_callbacks) > 0:
            await asyncio.sleep(0.05)


async def run(url: str, fake_port: int, n: int, mode: str) -> dict[str, float]:
    """Worker CPU ms per task and throughput, after one warm-up task (for `hits`: the answer then cached)."""
    settings = bench_settings(url, fake_port, 0.0, response_cache_ttl_seconds=0 if mode == "off" else 3600)
    db = Database(settings)
    callbacks = f"http://127.0.0.1:{fake_port}/v1/bots/bench/callback"
    pipeline = build_pipeline(settings, db)
    # Priced like a real model, so every mode records its usage the same way (no unpriced warning per call).
    await (await db.raw_pool()).execute(PRICE_SQL)
    await fill(db, 1, distinct=mode == "misses", callback_base=callbacks, first=n)
    await drain(settings, db, pipeline)
    await fill(db, n, distinct=mode == "misses", callback_base=callbacks)
    async with httpx.AsyncClient() as client:
        llm_before = (await client.get(f"http://127.0.0.1:{fake_port}/stats")).json()["llm"]
    started = time.perf_counter()
    cpu = time.process_time()
    await drain(settings, db, pipeline)
    elapsed = time.perf_counter() - started
    cpu_ms = (time.process_time() - cpu) * 1000 / n
    await pipeline.aclose()
    result = {
        "cpu_ms": cpu_ms,
        "rate": n / elapsed,
        "completed": await _count(db, AIProcessingTask.status == TaskStatus.COMPLETED) - 1,
    }
    async with httpx.AsyncClient() as client:
        result["model_calls"] = (await client.get(f"http://127.0.0.1:{fake_port}/stats")).json()["llm"] - llm_before
    await db.dispose()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    setup_logging(bench_settings("sqlite://", 0))
    port = free_port()
    fake = [sys.executable, "-m", "uvicorn", "bench.fakes:app", "--port", str(port), "--log-level", "warning",
            "--no-access-log", "--loop", "uvloop", "--http", "httptools"]
    results: dict[str, list[dict[str, float]]] = {mode: [] for mode in MODES}
    with server(fake, {"PYTHONPATH": str(ROOT)}, port):
        for _ in range(args.rounds):
            for mode in MODES:  # interleaved, so a noisy neighbour hits every mode alike
                with throwaway_database("bench_cache") as url:
                    results[mode].append(asyncio.run(run(url, port, args.tasks, mode)))

    print(f"PostgreSQL on this machine ({os.cpu_count()} cores), one worker process, full pipeline, instant LLM "
          f"fake, {args.tasks} tasks x {args.rounds} rounds")
    for mode, runs in results.items():
        cpu = [r["cpu_ms"] for r in runs]
        rate = [r["rate"] for r in runs]
        print(f"   {mode:7} worker CPU {min(cpu):5.2f}-{max(cpu):5.2f} ms/task, "
              f"{min(rate):4.0f}-{max(rate):4.0f} tasks/s, "
              f"model calls {runs[-1]['model_calls']:.0f}, completed {runs[-1]['completed']:.0f}  - {MODES[mode]}")
    for i in range(args.rounds):
        off, hits, misses = (results[m][i]["cpu_ms"] for m in MODES)
        print(f"   round {i + 1}: hit/off CPU ratio {hits / off:.2f}, miss/off {misses / off:.2f}")


if __name__ == "__main__":
    main()
