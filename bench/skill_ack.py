"""Benchmark POST /skill (API process only, PostgreSQL) against a bare parse-and-INSERT baseline.

Prints saturating throughput of both (wrk, or a Python client when wrk is missing) and their ratio,
then p50/p99 latency of /skill at a fixed request rate.

    python -m bench.skill_ack [--seconds 10] [--rate 200] [--connections 32]
"""

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

from bench.common import ROOT, http_request, percentile, read_response, server, throwaway_database
from tests.fake_services import free_port

FIXTURE = ROOT / "tests" / "fixtures" / "kakao" / "skill_request_callback.json"
MARK = "__USER__"

WRK_SCRIPT = """
local template = [[%s]]
local n = 0
request = function()
  n = n + 1
  local body = template:gsub("%s", tostring(n) .. "-" .. tostring(math.random(1, 1e9)))
  return wrk.format("POST", "/skill", {["Content-Type"] = "application/json"}, body)
end
"""


def body_template() -> str:
    payload = json.loads(FIXTURE.read_text())
    payload["userRequest"]["user"]["id"] = MARK
    return json.dumps(payload, ensure_ascii=False)


def uvicorn_cmd(target: str, port: int) -> list[str]:
    return [
        sys.executable, "-m", "uvicorn", target, "--port", str(port),
        "--log-level", "warning", "--no-access-log", "--loop", "uvloop", "--http", "httptools",
    ]


def saturate_wrk(port: int, seconds: int, connections: int) -> float:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(WRK_SCRIPT % (body_template(), MARK))
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "-s", script.name, f"http://127.0.0.1:{port}/skill"],
        capture_output=True, text=True, check=True,
    ).stdout
    os.unlink(script.name)
    if "Non-2xx" in out:
        raise RuntimeError(f"errors under load:\n{out}")
    return float(next(line.split()[1] for line in out.splitlines() if line.startswith("Requests/sec")))


async def _closed_loop(port: int, seconds: float, connections: int) -> float:
    template = body_template()
    done = 0
    stop = time.monotonic() + seconds

    async def client(i: int) -> None:
        nonlocal done
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        n = 0
        while time.monotonic() < stop:
            n += 1
            writer.write(http_request("POST", "/skill", template.replace(MARK, f"{i}-{n}").encode()))
            if await read_response(reader) != 200:
                raise RuntimeError("non-200 under load")
            done += 1
        writer.close()

    start = time.monotonic()
    await asyncio.gather(*(client(i) for i in range(connections)))
    return done / (time.monotonic() - start)


def saturate(port: int, seconds: int, connections: int) -> float:
    if shutil.which("wrk"):
        return saturate_wrk(port, seconds, connections)
    return asyncio.run(_closed_loop(port, seconds, connections))


async def fixed_rate(port: int, rate: int, seconds: float) -> list[float]:
    """Open-loop load: one request every 1/rate s on a pool of keep-alive connections."""
    template = body_template()
    pool: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()
    for _ in range(64):
        pool.put_nowait(await asyncio.open_connection("127.0.0.1", port))
    latencies: list[float] = []

    async def one(n: int) -> None:
        reader, writer = await pool.get()
        started = time.perf_counter()
        writer.write(http_request("POST", "/skill", template.replace(MARK, f"rate-{n}").encode()))
        status = await read_response(reader)
        latencies.append((time.perf_counter() - started) * 1000)
        pool.put_nowait((reader, writer))
        if status != 200:
            raise RuntimeError(f"status {status}")

    total = int(rate * seconds)
    start = time.perf_counter()
    pending = []
    for n in range(total):
        await asyncio.sleep(max(0.0, start + n / rate - time.perf_counter()))
        pending.append(asyncio.create_task(one(n)))
    await asyncio.gather(*pending)
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rate", type=int, default=200)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()

    results: dict[str, float] = {}
    for name, target in (("baseline", "bench.baseline_app:app"), ("skill", "app.main:app")):
        with throwaway_database(f"bench_{name}") as url:
            port = free_port()
            env = {"DATABASE_URL": url, "LOG_LEVEL": "WARNING", "EMBEDDED_WORKER": "false", "PYTHONPATH": str(ROOT)}
            with server(uvicorn_cmd(target, port), env, port):
                saturate(port, 2, args.connections)  # warm-up
                results[name] = saturate(port, args.seconds, args.connections)
                if name == "skill":
                    lat = asyncio.run(fixed_rate(port, args.rate, args.seconds))
    tool = "wrk" if shutil.which("wrk") else "python client"
    print(f"load generator: {tool}, {args.connections} connections, {args.seconds}s, 1 uvicorn worker, PostgreSQL")
    print(f"baseline (parse + 1 asyncpg INSERT): {results['baseline']:8.0f} req/s")
    print(f"POST /skill (store + enqueue + ack):  {results['skill']:8.0f} req/s")
    print(f"ratio skill/baseline:                {results['skill'] / results['baseline']:8.2f}  (target >= 0.5)")
    print(
        f"/skill at {args.rate} req/s: p50 {percentile(lat, 0.5):.1f} ms, p99 {percentile(lat, 0.99):.1f} ms, "
        f"max {max(lat):.1f} ms over {len(lat)} requests  (target p99 <= 25 ms)"
    )


if __name__ == "__main__":
    main()
