"""The reliability scenarios, each a function of its load so CI runs them small and `bench/chaos.py` big.

Each takes a migrated PostgreSQL database URL (the PostgreSQL-restart scenario makes its own cluster) and
a work folder for logs, runs real processes through `Harness`, and returns the audit `Report`.
"""

import asyncio
import signal
import subprocess
import sys
import time
from pathlib import Path

import asyncpg

from app.services import texts
from tests.e2e.harness import ROOT, Harness, PgCluster, Proc, Report, _texts, pg_dsn
from tests.fake_services import KakaoRules, LLMFaults


async def interleaved_users(url: str, workdir: Path, *, users: int = 60, messages: int = 3,
                            log_level: str = "DEBUG") -> Report:
    """Many users, several quick messages each, interleaved: every answer to its own user and message."""
    llm = LLMFaults(latency=0.05, jitter=0.5)
    async with Harness(url, workdir, llm=llm, log_level=log_level) as h:
        started = time.monotonic()
        await h.load(users, messages, concurrency=64)
        h.measures["load_s"] = round(time.monotonic() - started, 1)
        await h.settle(timeout=120 + users * messages / 20)
        h.measures["total_s"] = round(time.monotonic() - started, 1)
        return await h.audit("interleaved users", load=f"{users} users x {messages} quick messages, 64 at once",
                             faults="none (LLM 0.05-0.55 s)")


async def worker_kills(url: str, workdir: Path, *, users: int = 40, messages: int = 3, kills: int = 3,
                       rate: float = 12.0, log_level: str = "DEBUG") -> Report:
    """Two workers; one is SIGKILLed while it holds tasks, `kills` times, and replaced each time. The
    survivor (or the replacement) reclaims the dead worker's tasks once their leases expire."""
    llm = LLMFaults(latency=1.0, jitter=0.5)
    async with Harness(url, workdir, llm=llm, workers=2, env={"TASK_LEASE_SECONDS": "2"},
                       log_level=log_level) as h:
        load = asyncio.create_task(h.load(users, messages, rate=rate))
        reclaims: list[float] = []
        for kill in range(kills):
            victim = h.live_workers[kill % 2]

            async def holds_tasks(victim: Proc = victim) -> bool:
                return await h.in_flight(victim) >= 3

            await h.wait_for(holds_tasks, timeout=60, what=f"{victim.name} to hold tasks")
            victim.signal(signal.SIGKILL)
            await victim.wait(5)
            held = [r["id"] for r in await h.fetch(
                "SELECT id FROM aiprocessingtask WHERE status = 'processing' AND locked_by LIKE $1",
                f"%:{victim.pid}:%")]
            h.start_worker()

            async def reclaimed(held: list = held, victim: Proc = victim) -> bool:
                return not await h.scalar(
                    """SELECT count(*) FROM aiprocessingtask WHERE id = ANY($1::uuid[])
                       AND (status = 'pending' OR (status = 'processing' AND locked_by LIKE $2))""",
                    held, f"%:{victim.pid}:%", default=0)

            reclaims.append(await h.wait_for(reclaimed, timeout=60, what="the dead worker's tasks", interval=0.1))
            await h.worker_ready(h.workers[-1])
        await load
        await h.settle(timeout=120)
        h.measures.update(kills=kills, reclaim_max_s=round(max(reclaims), 2),
                          reclaim_mean_s=round(sum(reclaims) / len(reclaims), 2))
        # A worker killed mid-send leaves its callback `sending`: another worker POSTs it once more, so every
        # answer Kakao took ends recorded as delivered.
        return await h.audit("worker SIGKILL", load=f"{users} users x {messages}, {rate:g}/s, 2 workers",
                             faults=f"{kills} x SIGKILL (lease 2 s)", expect_callbacks=False, repeats_allowed=True)


async def kill_during_send(url: str, workdir: Path, *, users: int = 50, messages: int = 3, kills: int = 2,
                           held: int = 4, rate: float = 12.0, log_level: str = "DEBUG") -> Report:
    """The only worker is SIGKILLed while Kakao holds `held` of its callback POSTs unanswered (answers stored,
    callbacks `sending`), `kills` times, and restarted. Kakao took every other held POST (shown, URL spent)
    and never received the rest: the new worker POSTs each once more; Kakao refuses the repeats of the ones it
    took (recorded as delivered) and shows the others. Nothing is lost, nothing shown twice."""
    kakao = KakaoRules()
    # The held POSTs must outlast the wait for the kill: the longest callback timeout, not the harness's 2 s.
    env = {"TASK_LEASE_SECONDS": "2", "CALLBACK_TIMEOUT_SECONDS": "10"}
    async with Harness(url, workdir, llm=LLMFaults(latency=1.5), kakao=kakao, env=env, log_level=log_level) as h:
        load = asyncio.create_task(h.load(users, messages, rate=rate))
        restarts: list[float] = []
        resends: list[float] = []
        orphaned: list[str] = []
        for _ in range(kills):
            (victim,) = h.live_workers  # the only worker: every held POST is its own
            kakao.hold = held

            async def holding() -> bool:
                return len(h.fakes.holding) >= held

            await h.wait_for(holding, timeout=60, what="held callback POSTs")
            victim.signal(signal.SIGKILL)
            await victim.wait(5)
            left = [r["id"] for r in await h.fetch(
                "SELECT id FROM aiprocessingtask WHERE callback_status = 'sending' AND callback_sender LIKE $1",
                f"%:{victim.pid}:%")]
            orphaned += [str(i) for i in left]
            killed = time.monotonic()
            await h.worker_ready(h.start_worker())
            restarts.append(time.monotonic() - killed)

            async def resent(left: list = left) -> bool:
                return not await h.scalar("SELECT count(*) FROM aiprocessingtask WHERE id = ANY($1::uuid[]) "
                                          "AND callback_status = 'sending'", left, default=0)

            resends.append(await h.wait_for(resent, timeout=60, what="the dead worker's callbacks sent again",
                                            interval=0.05))
        await load
        await h.settle(timeout=120)
        held_posts = [p for p in h.fakes.posts if p.held]
        completed = await h.scalar("SELECT count(*) FROM aiprocessingtask WHERE id = ANY($1::uuid[]) "
                                   "AND status = 'completed'", orphaned, default=0)
        h.measures.update(
            kills=kills, held_posts=len(held_posts), held_shown=sum(p.status == "SUCCESS" for p in held_posts),
            left_sending=len(orphaned), left_sending_completed=completed,
            restart_max_s=round(max(restarts), 2), resent_after_ready_max_s=round(max(resends), 2),
        )
        report = await h.audit("SIGKILL during send", load=f"{users} users x {messages}, {rate:g}/s, 1 worker",
                               faults=f"{kills} x SIGKILL, {held} callback POSTs held each (lease 2 s)",
                               repeats_allowed=True)
    if len(held_posts) != kills * held:
        report.problems.append(f"{len(held_posts)} held POSTs, expected {kills * held}")
    if report.details["refused_repeats"] < report.details["held_shown"]:
        report.problems.append("a held POST Kakao took was not repeated, or its repeat was not refused")
    return report


async def llm_faults(url: str, workdir: Path, *, users: int = 40, messages: int = 3, error_rate: float = 0.3,
                     log_level: str = "DEBUG") -> Report:
    """30% of LLM calls fail (429 with Retry-After, 500, hang past the attempt timeout, malformed body):
    every acknowledged request still gets a final callback (answer or apology) before its deadline."""
    llm = LLMFaults(latency=0.1, jitter=0.4, error_rate=error_rate, retry_after=1.0, hang_seconds=30,
                    errors=("429", "500", "timeout", "malformed"))
    env = {"TASK_ANSWER_TIMEOUT_SECONDS": "4"}
    async with Harness(url, workdir, llm=llm, env=env, log_level=log_level) as h:
        await h.load(users, messages, concurrency=32)
        await h.settle(timeout=120)
        report = await h.audit("LLM faults", load=f"{users} users x {messages}",
                               faults=f"{error_rate:.0%} of LLM calls: 429 / 500 / timeout / malformed")
    late = [s for s in h.sent if _final_callback_after(h, s) > 50.0]
    if late:
        report.problems.append(f"final callbacks after the 50 s deadline: {len(late)}")
    return report


def _final_callback_after(h: Harness, sent) -> float:  # type: ignore[no-untyped-def]
    posts = [p for p in h.fakes.posts_to(sent.token) if p.status == "SUCCESS"]
    return posts[0].at - sent.sent_at if posts else 0.0


async def callback_peer_trouble(url: str, workdir: Path, *, users: int = 20, log_level: str = "DEBUG") -> Report:
    """Kakao down (connection refused), then slow (answers after the worker's callback timeout): no URL is
    ever POSTed twice, and every answer is kept and given on the user's next message."""
    kakao = KakaoRules()
    async with Harness(url, workdir, kakao=kakao, log_level=log_level) as h:
        await h.kakao_server.stop()  # down: nothing listens on the callback port
        await h.load(range(users), 1)
        await h.settle(timeout=60)
        down_state = await h.queue_state()
        kakao.delay = 3.0  # slow: longer than CALLBACK_TIMEOUT_SECONDS=2
        await h.kakao_server.start()
        await h.load(range(users, 2 * users), 1)
        await h.settle(timeout=60)
        kakao.delay = 0.0
        kept_before = await h.scalar(
            "SELECT count(*) FROM aiprocessingtask WHERE status = 'completed' AND answer_delivered_at IS NULL")
        await h.load(range(2 * users), 1, first_seq=2)  # everyone writes again
        await h.settle(timeout=60)
        h.measures.update(callbacks_failed_while_down=down_state.get("cb_failed", 0), kept_before_next=kept_before)
        report = await h.audit("Kakao callback down / slow", load=f"{2 * users} users x 2",
                               faults=f"peer down for {users}, slow (3 s) for {users}", expect_callbacks=False)
    firsts = [s for s in h.sent if s.seq == 1]
    given_later = sum(1 for s in h.sent if s.seq == 2 and any(f"MSG-u{s.user}-1-END" in t for t in s.reply_texts))
    report.details["first_answers_given_on_next_message"] = given_later
    if given_later != len(firsts):
        report.problems.append(f"only {given_later}/{len(firsts)} kept answers were given on the next message")
    return report


async def sigterm_under_load(url: str, workdir: Path, *, users: int = 30, messages: int = 2,
                             log_level: str = "DEBUG") -> Report:
    """SIGTERM a worker holding tasks twice: with a long grace its in-flight tasks finish and are delivered;
    with a short one they are released unspent and a new worker answers them."""
    llm = LLMFaults(latency=2.0, jitter=0.5)
    async with Harness(url, workdir, llm=llm, env={"WORKER_SHUTDOWN_GRACE_SECONDS": "6"},
                       log_level=log_level) as h:
        load = asyncio.create_task(h.load(users, messages, rate=8))
        exits: list[str] = []
        for grace, next_grace in (("6", "0.5"), ("0.5", "6")):
            worker = h.live_workers[0]

            async def holds_tasks(worker: Proc = worker) -> bool:
                return await h.in_flight(worker) >= 3

            await h.wait_for(holds_tasks, timeout=60, what=f"{worker.name} to hold tasks")
            stopping = time.monotonic()
            worker.signal(signal.SIGTERM)
            h.start_worker({"WORKER_SHUTDOWN_GRACE_SECONDS": next_grace})
            code = await worker.wait(float(grace) + 10)
            exits.append(f"grace {grace} s: exit {code} after {time.monotonic() - stopping:.1f} s")
            if code != 0:
                raise AssertionError(f"{worker.name} did not stop cleanly on SIGTERM: {code}\n{h.tail(worker)}")
            await h.worker_ready(h.workers[-1])
        await load
        await h.settle(timeout=120)
        released = sum(_count_in_log(w.log, "Released") for w in h.workers)
        h.measures.update(sigterms=exits, logs_with_release=released)
        # The short grace may cut a POST off: its outcome is lost, so it is sent once more.
        report = await h.audit("worker SIGTERM", load=f"{users} users x {messages}, 8/s",
                               faults="2 x SIGTERM (grace 6 s, then 0.5 s)", repeats_allowed=True)
    if not released:
        report.problems.append("the short-grace SIGTERM released no task")
    return report


def _count_in_log(path: Path, needle: str) -> int:
    return sum(1 for line in path.read_text(errors="replace").splitlines() if needle in line)


async def two_by_two(url: str, workdir: Path, *, users: int = 40, messages: int = 3, concurrency: int = 32,
                     log_level: str = "DEBUG") -> Report:
    """Two API processes and two worker processes on one database."""
    llm = LLMFaults(latency=0.2, jitter=0.5)
    async with Harness(url, workdir, llm=llm, apis=2, workers=2, log_level=log_level) as h:
        await h.load(users, messages, concurrency=concurrency)
        await h.settle(timeout=120)
        per_worker = [_count_in_log(w.log, " completed (attempt") for w in h.workers]
        h.measures["completed_per_worker"] = per_worker
        report = await h.audit("2 APIs + 2 workers", load=f"{users} users x {messages}, {concurrency} at once",
                               faults="none")
    if min(per_worker) == 0:
        report.problems.append(f"one worker did no work: {per_worker}")
    return report


async def postgres_restart(workdir: Path, *, users: int = 30, messages: int = 3, restarts: int = 2,
                           down_seconds: float = 2.0, rate: float = 15.0, log_level: str = "DEBUG") -> Report:
    """A throwaway PostgreSQL cluster restarted mid-load: /skill answers within 5 s throughout (an apology
    when it cannot store), and workers and their LISTEN connections come back by themselves. The poll
    fallback is 30 s here, so only a recovered LISTEN answers the messages sent after the restarts in time."""
    cluster = PgCluster()
    try:
        await asyncio.to_thread(cluster.init)
        url = cluster.url("chaos")
        await _create_and_migrate(cluster, "chaos")
        env = {"WORKER_POLL_SECONDS": "30", "SKILL_STORE_TIMEOUT_SECONDS": "3"}
        async with Harness(url, workdir, llm=LLMFaults(latency=0.3, jitter=0.5), env=env,
                           log_level=log_level) as h:
            load = asyncio.create_task(h.load(users, messages, rate=rate))
            outages: list[tuple[float, float]] = []
            for _ in range(restarts):
                async def some_answers(n: int = len(h.fakes.posts) + 5) -> bool:
                    return len(h.fakes.posts) >= n

                await h.wait_for(some_answers, timeout=60, what="answers before a restart")
                stopping = time.monotonic()
                await asyncio.to_thread(cluster.stop, "fast")
                await asyncio.sleep(down_seconds)  # the outage itself, not a timing assertion
                await asyncio.to_thread(cluster.start)
                outages.append((stopping, time.monotonic()))
            await load
            listen = await h.wait_for(lambda: _all_listening(h), timeout=30, what="LISTEN to reconnect")
            probe_from = len(h.sent)
            await h.load(range(users), 1, first_seq=messages + 1)  # after the restarts
            await h.settle(timeout=120, quiet=20)  # outlast the workers' retries to record callback outcomes
            probes = h.sent[probe_from:]
            probe_latency = max(
                (p.at - s.sent_at for s in probes for p in h.fakes.posts_to(s.token) if p.status == "SUCCESS"),
                default=None,
            )
            # The API must take messages again as soon as the database is back (1 s of slack for its pool).
            outside = [s for s in h.sent if texts.CANNOT_STORE in s.reply_texts
                       and not any(down - 0.5 <= s.sent_at <= up + 1.0 for down, up in outages)]
            h.measures.update(restarts=restarts, listen_back_s=round(listen, 2),
                              probe_max_s=round(probe_latency, 2) if probe_latency else None,
                              apologies_outside_outages=len(outside))
            report = await h.audit(
                "PostgreSQL restart", load=f"{users} users x {messages + 1}, {rate:g}/s",
                faults=f"{restarts} x restart, {down_seconds:g} s down each", expect_callbacks=False,
            )
            if outside:
                report.problems.append(f"{len(outside)} messages refused while the database was up")
            if probe_latency is None or probe_latency > 10:
                report.problems.append(f"messages after the restarts answered in {probe_latency} s (LISTEN lost?)")
            return report
    finally:
        await asyncio.to_thread(cluster.destroy)


async def _all_listening(h: Harness) -> bool:
    live = {w.pid for w in h.live_workers}
    rows = await h.fetch("SELECT pid, listen_connected, last_seen_at FROM workerheartbeat "
                         "WHERE last_seen_at > now() - interval '2 seconds'")
    return live <= {r["pid"] for r in rows if r["listen_connected"]}


async def _create_and_migrate(cluster: PgCluster, name: str) -> None:
    conn = await asyncpg.connect(pg_dsn(cluster.url()))
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    await migrate(cluster.url(name))


async def migrate(url: str) -> None:
    """alembic upgrade head in a child process (its settings come from the environment alone)."""
    env = {"PATH": "/usr/bin:/bin", "DATABASE_URL": url, "LOG_LEVEL": "WARNING", "PYTHONPATH": str(ROOT)}
    await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "alembic", "upgrade", "head"], cwd=ROOT, env=env, check=True,
        capture_output=True, timeout=120,
    )


async def poison_task(url: str, workdir: Path, *, messages: int = 2, log_level: str = "DEBUG") -> Report:
    """Messages whose every attempt kills the worker running it (SIGKILL while it holds them, once per
    attempt): after the last attempt the users still get an apology through their callbacks."""
    llm = LLMFaults(latency=30.0)  # every attempt is still running when its worker dies
    async with Harness(url, workdir, llm=llm, env={"TASK_LEASE_SECONDS": "1"}, log_level=log_level) as h:
        await h.load(messages, 1)
        max_attempts = 3
        for attempt in range(1, max_attempts + 1):
            worker = h.live_workers[0]

            async def holds_all(worker: Proc = worker, calls: int = attempt * messages) -> bool:
                return len(h.fakes.llm_requests) >= calls and await h.in_flight(worker) == messages

            await h.wait_for(holds_all, timeout=60, what=f"{worker.name} to hold the messages")
            worker.signal(signal.SIGKILL)
            await worker.wait(5)
            h.start_worker()
            await h.worker_ready(h.workers[-1])
        await h.settle(timeout=60)
        report = await h.audit("poison task", load=f"{messages} messages", faults="SIGKILL on every attempt")
    if len(h.fakes.llm_requests) != max_attempts * messages:  # none for the apology-only attempt
        report.problems.append(f"{len(h.fakes.llm_requests)} LLM calls for {messages} messages")
    return report


async def overload(url: str, workdir: Path, *, users: int = 300, latency: float = 1.0, concurrency: int = 64,
                   env: dict[str, str] | None = None, log_level: str = "DEBUG") -> Report:
    """Issue 16: `users` messages at once, far more than one worker answers inside the callback window with a
    `latency` s model. Every acknowledged request gets exactly one callback (answer or apology) inside the window;
    /skill stops promising callbacks once the backlog outlasts it; no model call is spent on a task whose window
    closed unless its answer is kept; then everyone presses "답변 확인" and gets the kept answers."""
    async with Harness(url, workdir, llm=LLMFaults(latency=latency), env=env, log_level=log_level) as h:
        window = float(h.env.get("CALLBACK_DEADLINE_SECONDS", "50"))
        started = time.monotonic()
        await h.load(users, 1, concurrency=concurrency)
        h.measures["load_s"] = round(time.monotonic() - started, 1)
        await h.settle(timeout=120 + users / 10)
        firsts = list(h.sent)
        kept = await h.scalar("SELECT count(*) FROM aiprocessingtask WHERE status = 'completed' "
                              "AND answer_delivered_at IS NULL", default=0)
        checks = [await h.send(s.user, 2, command=texts.CHECK_ANSWER) for s in firsts]
        calls, completed, attempts = len(h.fakes.llm_requests), *(await h.fetch(
            "SELECT count(*) FILTER (WHERE status = 'completed' AND ai_response IS NOT NULL), max(attempts) "
            "FROM aiprocessingtask"))[0]
        acked = [s for s in firsts if s.acked]
        by_callback = [_final_callback_after(h, s) for s in acked]
        answered = sum(1 for s in acked for p in h.fakes.posts_to(s.token)
                       if p.status == "SUCCESS" and f"MSG-u{s.user}-1-END" in " ".join(_texts(p.body)))
        told = [s for s in firsts if texts.OVERLOADED in " ".join(s.reply_texts)]
        given = sum(1 for c in checks if f"MSG-u{c.user}-1-END" in " ".join(c.reply_texts))
        h.measures.update(
            callbacks_promised=len(acked), answered_by_callback=answered, apologised_by_callback=len(acked) - answered,
            told_at_intake=len(told), without_callback=sum(1 for t in by_callback if t == 0.0),
            callback_max_s=round(max(by_callback, default=0.0), 2), kept_before_check=kept,
            given_on_check=given, llm_calls=calls, completed=completed, max_attempts=attempts,  # >1: a lease lost
            total_s=round(time.monotonic() - started, 1),
        )
        report = await h.audit("overload", load=f"{users} messages at once ({concurrency} in flight), 1 worker",
                               faults=f"LLM {latency:g} s, callback window {window:g} s")
    report.max_latency = h.measures["callback_max_s"]
    # The window runs from the request's arrival at the API (between sending it and its reply); a POST starts
    # before the deadline and may take up to the callback timeout (Kakao's own limit, 60 s, is enforced by the fake).
    slack = float(h.env["CALLBACK_TIMEOUT_SECONDS"])
    late = [s for s, t in zip(acked, by_callback, strict=True) if t > window + (s.latency or 0.0) + slack]
    if late:
        report.problems.append(f"callbacks after the {window:g} s window: {len(late)}")
    if calls != completed:
        report.problems.append(f"{calls} model calls for {completed} kept answers")
    if given != kept:
        report.problems.append(f"'{texts.CHECK_ANSWER}' gave {given} of the {kept} kept answers")
    return report
