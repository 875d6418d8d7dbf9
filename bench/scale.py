"""Scale-out: the full answer pipeline with 1, 2 and 4 `python -m worker` processes on PostgreSQL.

Each run starts its workers on an empty queue, waits until every one has a heartbeat, then commits all tasks
in one transaction (callback mode, instant LLM fake and local callback receiver) and times until every
callback is settled. CPU per task is the workers' own user + system time (from /proc), not the fakes'.

    python -m bench.scale [--workers 1,2,4] [--tasks 3000] [--concurrency 16]
"""

import argparse
import asyncio
import os
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

from sqlalchemy import func, insert, select, text

from app.config import Settings
from app.db import Database
from app.models import AIProcessingTask, CallbackStatus, TaskStatus, WorkerHeartbeat, utcnow
from app.queue.connection import NOTIFY_CHANNEL
from bench.common import ROOT, server, throwaway_database
from bench.queue import make_message
from tests.fake_services import free_port

_TICKS = os.sysconf("SC_CLK_TCK")


def worker_env(url: str, fake_port: int, concurrency: int) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "DATABASE_URL": url,
        "LOG_LEVEL": "WARNING",
        "OPENAI_API_KEY": "sk-bench-not-a-real-key",
        "OPENAI_BASE_URL": f"http://127.0.0.1:{fake_port}/llm/0.0/v1",
        "KAKAO_CALLBACK_ALLOWED_HOSTS": "127.0.0.1",
        "KAKAO_CALLBACK_ALLOW_HTTP": "true",
        "WORKER_CONCURRENCY": str(concurrency),
        "DB_POOL_TIMEOUT": "60",
        "RESPONSE_CACHE_TTL_SECONDS": "0",  # every task asks the same question; a model call each is measured
    }


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a live process (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


async def fill(db: Database, n: int, callback_base: str) -> None:
    """All `n` tasks in one transaction, so every worker sees the whole backlog at once."""
    user_id, conversation_id, message_id = await make_message(db, kakao_user_id=f"scale-{time.monotonic_ns()}")
    now = utcnow()
    rows = [
        {
            "bot_id": "bench", "user_id": user_id, "conversation_id": conversation_id, "message_id": message_id,
            "status": TaskStatus.PENDING, "attempts": 0, "max_attempts": 3, "run_after": now,
            "callback_url": f"{callback_base}/{i}", "callback_not_before": now + timedelta(seconds=1),
            "callback_deadline": now + timedelta(seconds=55), "callback_status": CallbackStatus.PENDING,
            "input_tokens": 0, "output_tokens": 0, "created_at": now,
        }
        for i in range(n)
    ]
    async with db.sessions.begin() as session:
        await session.execute(insert(AIProcessingTask), rows)
        await session.execute(text(f"NOTIFY {NOTIFY_CHANNEL}"))


async def count(db: Database, condition: object) -> int:
    async with db.sessions() as session:
        return (await session.execute(select(func.count()).where(condition))).scalar_one()  # type: ignore[arg-type]


async def wait_for_workers(db: Database, k: int, procs: list[subprocess.Popen[bytes]]) -> None:
    deadline = time.monotonic() + 60
    while await count(db, WorkerHeartbeat.listen_connected) < k:
        if any(p.poll() is not None for p in procs) or time.monotonic() > deadline:
            raise RuntimeError("a worker did not start")
        await asyncio.sleep(0.1)


async def run(url: str, fake_port: int, k: int, n: int, concurrency: int) -> dict[str, float]:
    db = Database(Settings(_env_file=None, database_url=url, log_level="WARNING"))  # type: ignore[call-arg]
    env = worker_env(url, fake_port, concurrency)
    procs = [subprocess.Popen([sys.executable, "-m", "worker"], cwd=ROOT, env=env) for _ in range(k)]
    try:
        await wait_for_workers(db, k, procs)
        cpu_before = sum(cpu_seconds(p.pid) for p in procs)
        started = time.perf_counter()
        await fill(db, n, f"http://127.0.0.1:{fake_port}/v1/bots/bench/callback")
        open_callbacks = AIProcessingTask.callback_status.in_([CallbackStatus.PENDING, CallbackStatus.SENDING])
        while await count(db, open_callbacks) > 0:
            await asyncio.sleep(0.05)
        elapsed = time.perf_counter() - started
        cpu = sum(cpu_seconds(p.pid) for p in procs) - cpu_before
        answered = await count(db, AIProcessingTask.status == TaskStatus.COMPLETED)
        delivered = await count(db, AIProcessingTask.callback_status == CallbackStatus.SENT)
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(timeout=30)
        await db.dispose()
    return {"rate": answered / elapsed, "elapsed": elapsed, "cpu_ms": cpu * 1000 / n, "answered": answered,
            "delivered": delivered}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument("--tasks", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    port = free_port()
    fake = [sys.executable, "-m", "uvicorn", "bench.fakes:app", "--port", str(port), "--log-level", "warning",
            "--no-access-log", "--loop", "uvloop", "--http", "httptools"]
    results: dict[int, dict[str, float]] = {}
    with server(fake, {"PYTHONPATH": str(ROOT)}, port):
        for k in (int(w) for w in args.workers.split(",")):
            with throwaway_database("bench_scale") as url:
                results[k] = asyncio.run(run(url, port, k, args.tasks, args.concurrency))
    print(f"Full pipeline, instant LLM fake, PostgreSQL, {os.cpu_count()} cores, {args.tasks} tasks committed at once, "
          f"concurrency {args.concurrency} per worker")
    base = results[min(results)]["rate"]
    for k, r in results.items():
        print(f"  {k} worker(s): {r['rate']:6.0f} tasks/s ({r['rate'] / base:.2f}x), worker CPU {r['cpu_ms']:.1f} ms/task, "
              f"{r['answered']:.0f} answered, {r['delivered']:.0f} callbacks delivered, {r['elapsed']:.1f} s")


if __name__ == "__main__":
    main()
