"""Chaos run: every reliability scenario of tests/e2e at full size, each on a fresh PostgreSQL database, with
real API and worker processes and local fakes. Prints the table of docs/reliability.md.

    python -m bench.chaos                          # every scenario, full size (about 15 minutes)
    python -m bench.chaos --users 1000             # the interleaved-users scenario's user count
    python -m bench.chaos --only kills,restart     # some scenarios
    python -m bench.chaos --scale 0.2              # everything smaller (a quick look)

Exit status 1 when any audit found a problem (lost, duplicate or wrong-user answers, a reply over 5 s,
a leaked secret, a contacted hostile URL...). Logs of each run stay in --workdir.
"""

import argparse
import asyncio
import json
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from bench.common import throwaway_database
from tests.e2e import scenarios
from tests.e2e.harness import Report
from tests.e2e.ssrf import hostile_callbacks

HEADER = (
    "| scenario | load | faults injected | tasks | lost | duplicates | wrong-user | max end-to-end |\n"
    "|---|---|---|---|---|---|---|---|"
)


# Scenarios that make their own PostgreSQL cluster.
OWN_DATABASE = {"restart"}


def plan(users: int, scale: float) -> dict[str, Callable[[str, Path], Awaitable[Report]]]:
    """Scenario name -> runner(database_url, workdir) at the requested size."""

    def n(value: int) -> int:
        return max(int(value * scale), 2)

    quiet = "INFO"  # DEBUG logs of thousands of tasks cost the processes CPU; secrets are scanned either way
    return {
        "interleaved": lambda url, wd: scenarios.interleaved_users(
            url, wd, users=n(users), messages=3, log_level=quiet),
        "two-by-two": lambda url, wd: scenarios.two_by_two(url, wd, users=n(500), messages=3, log_level=quiet),
        "kills": lambda url, wd: scenarios.worker_kills(
            url, wd, users=n(200), messages=3, kills=5, rate=20, log_level=quiet),
        "kill-send": lambda url, wd: scenarios.kill_during_send(
            url, wd, users=n(50), messages=3, kills=2, held=6, rate=8, log_level=quiet),
        "poison": lambda url, wd: scenarios.poison_task(url, wd, messages=n(10), log_level=quiet),
        "sigterm": lambda url, wd: scenarios.sigterm_under_load(url, wd, users=n(120), messages=2, log_level=quiet),
        "llm-faults": lambda url, wd: scenarios.llm_faults(url, wd, users=n(300), messages=3, log_level=quiet),
        "kakao-down": lambda url, wd: scenarios.callback_peer_trouble(url, wd, users=n(100), log_level=quiet),
        "restart": lambda _url, wd: scenarios.postgres_restart(
            wd, users=n(150), messages=3, restarts=3, rate=30, log_level=quiet),
        "overload": lambda url, wd: scenarios.overload(url, wd, users=n(3000), concurrency=16, log_level=quiet),
        "ssrf-local": lambda url, wd: hostile_callbacks(url, wd, mode="local"),
        "ssrf-production": lambda url, wd: hostile_callbacks(url, wd, mode="production"),
    }


def run(name: str, runner: Callable[[str, Path], Awaitable[Report]], workdir: Path) -> Report:
    folder = workdir / name
    folder.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    if name in OWN_DATABASE:
        report = asyncio.run(runner("", folder))
    else:
        with throwaway_database(f"chaos_{name.replace('-', '_')}") as url:
            report = asyncio.run(runner(url, folder))
    report.details["scenario_s"] = round(time.monotonic() - started, 1)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=1000, help="users of the interleaved scenario (x3 messages)")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every scenario's size")
    parser.add_argument("--only", default="", help="comma-separated scenario names")
    parser.add_argument("--workdir", type=Path, default=None, help="where the processes' logs go")
    parser.add_argument("--json", type=Path, default=None, help="also write the reports as JSON here")
    args = parser.parse_args()
    runners = plan(args.users, args.scale)
    chosen = [name.strip() for name in args.only.split(",") if name.strip()] or list(runners)
    unknown = set(chosen) - set(runners)
    if unknown:
        parser.error(f"unknown scenario(s) {sorted(unknown)}; choose from {sorted(runners)}")
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="chaos-"))
    reports = []
    for name in chosen:
        print(f"--- {name}", flush=True)
        report = run(name, runners[name], workdir)
        print(report.summary(), flush=True)
        reports.append(report)
    print(f"\nlogs: {workdir}\n\n{HEADER}")
    for report in reports:
        print(report.row())
    if args.json:
        args.json.write_text(json.dumps([r.__dict__ for r in reports], ensure_ascii=False, indent=1, default=str))
    failed = [r.scenario for r in reports if not r.ok]
    if failed:
        print(f"\nFAILED: {', '.join(failed)}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
