"""Benchmark the chat API's streaming: time to first token added over the upstream, and streams held open.

One uvicorn process (API only, SQLite) in front of the local OpenAI-compatible fake (bench/fakes.py):

1. Time to first token: the same streamed request sent straight to the fake and through our server
   (key check, knowledge lookup, template, the pipeline, SSE re-encoding), one at a time, interleaved.
   Prints p50/p90/p99 of both and of the paired difference (target: p50 added < 20 ms).
2. Streams held open: N clients each start a stream whose upstream writes a word every GAP seconds, and wait
   until all have their first word while all are still open; prints how many, the time it took, and the
   server's memory per open stream.

    python -m bench.chat_api [--samples 300] [--streams 1000] [--gap 30]
"""

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench.common import ROOT, percentile, server
from bench.skill_ack import uvicorn_cmd
from tests.fake_services import free_port

ADMIN = "bench-admin-token"
BOT = "bench-bot"


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def body(n: int | str) -> dict[str, object]:
    # Every question is new: a response cache hit would skip the upstream being measured.
    return {"model": BOT, "messages": [{"role": "user", "content": f"질문 {n}"}], "stream": True,
            "stream_options": {"include_usage": True}}


async def first_token(client: httpx.AsyncClient, url: str, key: str, n: int | str) -> float:
    """Seconds from sending the request to the first chunk with text; the rest of the stream is read too."""
    started = time.perf_counter()
    first = None
    async with client.stream("POST", url, json=body(n), headers={"Authorization": f"Bearer {key}"}) as response:
        response.raise_for_status()
        async for line in response.aiter_lines():
            if first is None and line.startswith("data: {") and _has_text(json.loads(line[6:])):
                first = time.perf_counter() - started
    assert first is not None, "no text arrived"
    return first


def _has_text(chunk: dict[str, Any]) -> bool:
    return bool(chunk.get("choices") and chunk["choices"][0]["delta"].get("content"))


async def create_key(api: str) -> str:
    async with httpx.AsyncClient(base_url=api, headers={"Authorization": f"Bearer {ADMIN}"}) as admin:
        response = await admin.post("/admin/api-keys", json={"name": "bench", "bot_id": BOT})
        response.raise_for_status()
        return response.json()["key"]


async def time_to_first_token(api: str, fake: str, samples: int, pid: int) -> None:
    key = await create_key(api)
    direct, ours = [], []
    async with httpx.AsyncClient(timeout=30) as client:
        for n in range(20):  # warm-up: connections, the SDK's first call, SQLite's page cache
            await first_token(client, f"{api}/v1/chat/completions", key, f"warm-up {n}")
        cpu = cpu_seconds(pid)
        for n in range(samples):
            direct.append(await first_token(client, f"{fake}/llm/0/v1/chat/completions", "sk-bench", n))
            ours.append(await first_token(client, f"{api}/v1/chat/completions", key, n))
        cpu = cpu_seconds(pid) - cpu
    added = [o - d for o, d in zip(ours, direct, strict=True)]
    print(f"time to first token over {samples} streamed requests, one at a time (ms):")
    for name, values in (("upstream fake directly", direct), ("through our server", ours), ("added by us", added)):
        print(f"  {name:24s} p50 {percentile(values, 0.5) * 1000:6.1f}  p90 {percentile(values, 0.9) * 1000:6.1f}"
              f"  p99 {percentile(values, 0.99) * 1000:6.1f}")
    print(f"  server CPU per streamed answer (the whole stream, storing included): "
          f"{cpu / samples * 1000:.1f} ms")


async def held_open(api: str, fake: str, streams: int, pid: int) -> None:
    key = await create_key(api)
    before = rss_mb(pid)
    started = time.perf_counter()
    got_first = 0
    all_open = asyncio.Event()
    release = asyncio.Event()
    limits = httpx.Limits(max_connections=streams + 10, max_keepalive_connections=0)

    failed = 0

    async def one(client: httpx.AsyncClient, n: int) -> None:
        nonlocal got_first, failed
        try:
            async with client.stream("POST", "/v1/chat/completions", json=body(n),
                                     headers={"Authorization": f"Bearer {key}"}) as response:
                response.raise_for_status()
                async for line in response.aiter_lines():
                    if "벤치" in line:
                        got_first += 1
                        if got_first + failed == streams:
                            all_open.set()
                        await release.wait()  # hold the stream open, unread, until every stream has its first word
                        return
        except Exception:
            failed += 1
            if got_first + failed == streams:
                all_open.set()
            raise

    async with httpx.AsyncClient(base_url=api, timeout=120, limits=limits) as client:
        tasks = [asyncio.create_task(one(client, n)) for n in range(streams)]
        try:
            await asyncio.wait_for(all_open.wait(), timeout=110)
        except TimeoutError:
            pass
        elapsed = time.perf_counter() - started
        during = rss_mb(pid)
        release.set()
        await asyncio.gather(*tasks, return_exceptions=True)
    print(f"streams held open at once on one process: {got_first} of {streams} had their first word within "
          f"{elapsed:.1f} s, all still open ({failed} failed)")
    print(f"  server RSS {before:.0f} MB idle -> {during:.0f} MB with them open "
          f"({(during - before) * 1024 / max(got_first, 1):.0f} KB per open stream)")
    async with httpx.AsyncClient() as client:
        for _ in range(100):  # the upstream notices a closed stream at its next word or at once
            cancelled = (await client.get(f"{fake}/stats")).json()["streams_cancelled"]
            if cancelled >= got_first:
                break
            await asyncio.sleep(0.1)
    print(f"  upstream calls cancelled after their clients left: {cancelled} of {got_first}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=300)
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--gap", type=float, default=30.0, help="seconds between the upstream's words (phase 2)")
    args = parser.parse_args()

    fake_port = free_port()
    fake_cmd = [sys.executable, "-m", "uvicorn", "bench.fakes:app", "--port", str(fake_port), "--log-level",
                "warning", "--no-access-log", "--loop", "uvloop", "--http", "httptools", "--backlog", "4096"]
    fake = f"http://127.0.0.1:{fake_port}"
    with tempfile.TemporaryDirectory() as tmp, server(fake_cmd, {"PYTHONPATH": str(ROOT)}, fake_port):
        db_url = f"sqlite+aiosqlite:///{tmp}/bench.db"
        env = {"DATABASE_URL": db_url, "LOG_LEVEL": "WARNING", "ADMIN_TOKEN": ADMIN, "OPENAI_API_KEY": "sk-bench",
               "CHAT_RATE_LIMIT_PER_MINUTE": "0", "CHROMA_PATH": f"{tmp}/chroma", "EMBEDDING_BACKEND": "local"}
        subprocess.run([sys.executable, "-m", "alembic", "upgrade", "head"], cwd=ROOT,
                       env={**os.environ, **env}, check=True, capture_output=True)
        for phase in ("ttft", "open"):
            port = free_port()
            base = f"{fake}/llm/0/v1" if phase == "ttft" else f"{fake}/llm/0/{args.gap}/v1"
            with server([*uvicorn_cmd("app.main:app", port), "--backlog", "4096"],
                        {**env, "OPENAI_BASE_URL": base}, port) as proc:
                api = f"http://127.0.0.1:{port}"
                if phase == "ttft":
                    asyncio.run(time_to_first_token(api, fake, args.samples, proc.pid))
                else:
                    asyncio.run(held_open(api, fake, args.streams, proc.pid))
    print(json.dumps({"machine": f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}"}))


if __name__ == "__main__":
    main()
