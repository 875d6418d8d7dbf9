"""Scenario harness: the real API (`uvicorn app.main:app`) and worker (`python -m worker`) as processes on a
PostgreSQL database, the fake LLM and the fake Kakao of `tests/fake_services.py`, a load generator that plays
Kakao, and the audit every scenario ends with.

    async with Harness(database_url, workdir, llm=LLMFaults(...)) as h:
        await h.load(users=50, messages=3)
        await h.settle()
        report = await h.audit("name", load="50 users x 3")

The audit: every skill request has exactly one final answer (a callback that Kakao accepted, the reply
itself, or a later reply carrying it) or an apology, or its answer is stored for the user's next message;
nothing is shown twice and no answer is given twice; no callback URL is POSTed twice unless a worker died
mid-send (its repeat is refused by the single-use URL); every answer reaches its own user and refers
to its own message (the fake LLM echoes the message, which carries a marker naming user and message).
Everything runs on 127.0.0.1 only.
"""

import asyncio
import json
import os
import random
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import asyncpg
import httpx
from sqlalchemy.engine import make_url

from app.services import texts
from tests.fake_services import (
    INVALID_TOKEN,
    CallbackPost,
    FakeServices,
    KakaoRules,
    LLMFaults,
    Served,
    free_port,
)

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "tests" / "fixtures" / "kakao" / "skill_request_callback.json"
BOT_ID = "65a1f0c2e4b0d1a2b3c4d5e6"
KAKAO_REPLY_LIMIT = 5.0  # seconds Kakao waits for /skill
MARKER = re.compile(r"MSG-u(\d+)-(\d+)-END")
# Environment a child process may inherit; everything else (DATABASE_URL, DEBUG, ...) comes from the harness.
_INHERITED = ("PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TMPDIR", "VIRTUAL_ENV", "SSL_CERT_FILE")


def utterance(user: int, seq: int) -> str:
    return f"MSG-u{user}-{seq}-END 이 질문에 답해 주세요"


def pg_dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


# --- processes ----------------------------------------------------------------------------------------


class Proc:
    """One child process with its output appended to a log file (kept for the secret scan)."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], log: Path, cwd: Path) -> None:
        self.name = name
        self.log = log
        with log.open("ab") as out:
            self.popen = subprocess.Popen(args, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT)
        self.pid = self.popen.pid
        self.started = time.monotonic()

    @property
    def running(self) -> bool:
        return self.popen.poll() is None

    def signal(self, sig: int) -> None:
        if self.running:
            self.popen.send_signal(sig)

    async def wait(self, timeout: float) -> int | None:
        """Exit code, or None if still running after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while self.popen.poll() is None and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        return self.popen.poll()

    async def stop(self, timeout: float = 15.0) -> int | None:
        self.signal(signal.SIGTERM)
        code = await self.wait(timeout)
        if code is None:
            self.popen.kill()
            code = await self.wait(5)
        return code


# --- a throwaway PostgreSQL cluster --------------------------------------------------------------------


def pg_bin() -> Path | None:
    """The folder of initdb/pg_ctl: PG_BIN, PATH, or the newest /usr/lib/postgresql/*/bin."""
    if os.environ.get("PG_BIN"):
        return Path(os.environ["PG_BIN"])
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3]))
    return versions[-1].parent if versions else None


class PgCluster:
    """A PostgreSQL cluster of its own in a temporary folder and port; never the machine's shared server."""

    def __init__(self) -> None:
        bin_dir = pg_bin()
        if bin_dir is None:
            raise RuntimeError("initdb not found (set PG_BIN)")
        self.bin = bin_dir
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="chaos-pg-"))
        self.data = self.dir / "data"
        self._as_postgres = os.geteuid() == 0  # initdb refuses to run as root
        if self._as_postgres:
            shutil.chown(self.dir, "postgres")

    def _run(self, *args: str) -> None:
        command = [str(self.bin / args[0]), *args[1:]]
        if self._as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=60)

    @property
    def _options(self) -> str:
        return (
            f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=300"
        )

    def init(self) -> None:
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-locale",
                  "--no-sync")
        self.start()

    def start(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-o", self._options, "-l", str(self.dir / "server.log"), "-w",
                  "start")

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/{database}"

    def destroy(self) -> None:
        try:
            self.stop("immediate")
        except (subprocess.SubprocessError, OSError):
            pass
        shutil.rmtree(self.dir, ignore_errors=True)


# --- what was sent and what came back ---------------------------------------------------------------------


@dataclass
class Sent:
    """One skill request as Kakao would send it, and the reply it got."""

    user: int
    seq: int
    text: str
    token: str
    api: int
    sent_at: float
    replied_at: float | None = None
    status: int | None = None
    reply: dict[str, Any] | None = None
    error: str | None = None
    command: bool = False  # a command such as "답변 확인": no message of its own to answer

    @property
    def key(self) -> tuple[int, int]:
        return self.user, self.seq

    @property
    def acked(self) -> bool:
        return bool(self.reply and self.reply.get("useCallback") is True)

    @property
    def reply_texts(self) -> list[str]:
        return _texts(self.reply)

    @property
    def latency(self) -> float | None:
        return self.replied_at - self.sent_at if self.replied_at is not None else None


def _texts(body: Any) -> list[str]:
    if not isinstance(body, dict) or not isinstance(body.get("template"), dict):
        return []
    return [o["simpleText"]["text"] for o in body["template"].get("outputs", []) if "simpleText" in o]


@dataclass
class Report:
    """One scenario's audit: the row of the table in docs/reliability.md plus what else was measured."""

    scenario: str
    load: str
    faults: str
    tasks: int
    lost: int
    duplicates: int
    wrong_user: int
    max_latency: float | None
    details: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def row(self) -> str:
        latency = f"{self.max_latency:.1f} s" if self.max_latency is not None else "-"
        return (f"| {self.scenario} | {self.load} | {self.faults} | {self.tasks} | {self.lost} | {self.duplicates} "
                f"| {self.wrong_user} | {latency} |")

    def summary(self) -> str:
        extra = ", ".join(f"{k}={v}" for k, v in self.details.items())
        problems = "; ".join(self.problems) or "none"
        return f"{self.row()}\n  {extra}\n  problems: {problems}"


# --- the harness ----------------------------------------------------------------------------------------


class Harness:
    """API and worker processes on one database, fakes in this process, and a load generator."""

    def __init__(
        self,
        database_url: str,
        workdir: Path,
        *,
        llm: LLMFaults | None = None,
        kakao: KakaoRules | None = None,
        apis: int = 1,
        workers: int = 1,
        env: dict[str, str] | None = None,
        log_level: str = "DEBUG",
    ) -> None:
        self.database_url = database_url
        self.workdir = workdir
        self.logs = workdir / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.fakes = FakeServices(llm=llm or LLMFaults(), kakao=kakao or KakaoRules())
        self.llm_server = Served(self.fakes.app)
        self.kakao_server = Served(self.fakes.app)
        self.secrets = {
            "OPENAI_API_KEY": "sk-chaos-" + secrets.token_hex(16),
            "ADMIN_TOKEN": "admin-" + secrets.token_urlsafe(18),
            "KAKAO_SKILL_SECRET": "skill-" + secrets.token_urlsafe(18),
        }
        self.env = {
            "DATABASE_URL": database_url,
            **self.secrets,
            "OPENAI_BASE_URL": f"{self.llm_server.url}/v1",
            "KAKAO_CALLBACK_ALLOW_HTTP": "true",
            "KAKAO_CALLBACK_ALLOWED_HOSTS": "127.0.0.1",
            "LOG_LEVEL": log_level,
            "DEBUG": "false",
            "CHROMA_PATH": str(workdir / "chroma"),
            "WORKER_POLL_SECONDS": "1",
            "TASK_LEASE_SECONDS": "3",
            "WORKER_SHUTDOWN_GRACE_SECONDS": "5",
            "TASK_RETRY_BASE_SECONDS": "0.2",
            "TASK_RETRY_MAX_SECONDS": "2",
            "CALLBACK_TIMEOUT_SECONDS": "2",
            **(env or {}),
        }
        self.n_apis = apis
        self.n_workers = workers
        self.apis: list[Proc] = []
        self.api_ports: list[int] = []
        self.workers: list[Proc] = []
        self.sent: list[Sent] = []
        self.by_token: dict[str, Sent] = {}
        self.measures: dict[str, Any] = {}
        self.needles: dict[str, str] = {}  # more strings that must never be logged
        self._client: httpx.AsyncClient | None = None
        self._counter = 0

    # --- life cycle ---

    async def __aenter__(self) -> Self:
        await self.llm_server.start()
        await self.kakao_server.start()
        self._client = httpx.AsyncClient(timeout=10, limits=httpx.Limits(max_connections=256))
        try:
            for _ in range(self.n_apis):
                self.start_api()
            for _ in range(self.n_workers):
                self.start_worker()
            await self.ready()
        except BaseException:
            await self.close()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await asyncio.gather(*(p.stop() for p in [*self.workers, *self.apis]))
        if self._client is not None:
            await self._client.aclose()
        await self.llm_server.stop()
        await self.kakao_server.stop()

    def _child_env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k in _INHERITED}
        env.update({"PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1", **self.env, **(extra or {})})
        return env

    def start_api(self) -> Proc:
        index = len(self.apis)
        port = free_port()
        args = [sys.executable, "-m", "uvicorn", "app.main:app", "--host", "127.0.0.1", "--port", str(port),
                "--log-config", str(ROOT / "logging.ini"), "--no-access-log"]
        proc = Proc(f"api{index}", args, self._child_env(), self.logs / f"api{index}.log", self.workdir)
        self.apis.append(proc)
        self.api_ports.append(port)
        return proc

    def start_worker(self, extra_env: dict[str, str] | None = None) -> Proc:
        index = len(self.workers)
        args = [sys.executable, "-m", "worker"]
        proc = Proc(f"worker{index}", args, self._child_env(extra_env), self.logs / f"worker{index}.log",
                    self.workdir)
        self.workers.append(proc)
        return proc

    @property
    def live_workers(self) -> list[Proc]:
        return [w for w in self.workers if w.running]

    async def ready(self, timeout: float = 60.0) -> None:
        """Every running API answers /health and every running worker has written its heartbeat."""
        deadline = time.monotonic() + timeout
        assert self._client is not None
        for proc, port in zip(self.apis, self.api_ports, strict=True):
            while proc.running:
                try:
                    if (await self._client.get(f"http://127.0.0.1:{port}/health")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{proc.name} did not come up")
                await asyncio.sleep(0.1)
            else:
                raise RuntimeError(f"{proc.name} exited: {self.tail(proc)}")
        for proc in self.live_workers:
            await self.worker_ready(proc, timeout=max(deadline - time.monotonic(), 1.0))

    async def worker_ready(self, proc: Proc, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while not await self.scalar(
            "SELECT count(*) FROM workerheartbeat WHERE pid = $1 AND listen_connected", proc.pid, default=0
        ):
            if not proc.running:
                raise RuntimeError(f"{proc.name} exited: {self.tail(proc)}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{proc.name} did not start")
            await asyncio.sleep(0.1)

    def tail(self, proc: Proc, lines: int = 30) -> str:
        return "\n".join(proc.log.read_text(errors="replace").splitlines()[-lines:])

    # --- the database, read as the audit sees it ---

    async def fetch(self, sql: str, *args: Any, attempts: int = 40) -> list[asyncpg.Record]:
        """Rows of one query; rides out a restarting database (bounded retries)."""
        for attempt in range(attempts):
            try:
                conn = await asyncpg.connect(pg_dsn(self.database_url), timeout=5)
            except (OSError, asyncpg.PostgresError, TimeoutError):
                if attempt == attempts - 1:
                    raise
                await asyncio.sleep(0.25)
                continue
            try:
                return await conn.fetch(sql, *args)
            except (asyncpg.PostgresConnectionError, asyncpg.CannotConnectNowError, OSError):
                if attempt == attempts - 1:
                    raise
                await asyncio.sleep(0.25)
            finally:
                await conn.close()
        raise AssertionError("unreachable")

    async def scalar(self, sql: str, *args: Any, default: Any = None) -> Any:
        rows = await self.fetch(sql, *args)
        return rows[0][0] if rows else default

    # --- playing Kakao ---

    def callback_url(self, token: str) -> str:
        return f"{self.kakao_server.url}/v1/bots/{BOT_ID}/callback/{token}"

    def payload(self, user: int, seq: int, callback_url: str) -> dict[str, Any]:
        body = json.loads(FIXTURE.read_text())
        body["userRequest"]["user"]["id"] = f"chaos-user-{user:06d}"
        body["userRequest"]["user"]["properties"] = {}
        body["userRequest"]["utterance"] = utterance(user, seq)
        body["userRequest"]["callbackUrl"] = callback_url
        return body

    async def send(
        self, user: int, seq: int, *, api: int | None = None, callback_url: str | None = None, command: str | None = None
    ) -> Sent:
        """One utterance through /skill, with a fresh callback URL like Kakao's (or the `callback_url` given);
        `command`: send this command text instead of the user's marked message."""
        assert self._client is not None
        token = secrets.token_urlsafe(24)
        api = self._counter % len(self.apis) if api is None else api
        self._counter += 1
        body = self.payload(user, seq, callback_url or self.callback_url(token))
        if command is not None:
            body["userRequest"]["utterance"] = command
        self.fakes.issue(token)
        sent = Sent(user, seq, body["userRequest"]["utterance"], token, api, time.monotonic(), command=command is not None)
        self.sent.append(sent)
        self.by_token[token] = sent
        try:
            response = await self._client.post(
                f"http://127.0.0.1:{self.api_ports[api]}/skill", json=body,
                headers={"X-Skill-Secret": self.secrets["KAKAO_SKILL_SECRET"]},
            )
            sent.status = response.status_code
            sent.reply = response.json() if response.status_code == 200 else None
        except (httpx.HTTPError, ValueError) as exc:
            sent.error = type(exc).__name__
        sent.replied_at = time.monotonic()
        return sent

    async def load(
        self,
        users: int | range,
        messages: int = 1,
        *,
        first_seq: int = 1,
        concurrency: int = 32,
        rate: float | None = None,
    ) -> list[Sent]:
        """`messages` quick messages from each user, interleaved (every user's 1st, then every user's 2nd, ...),
        at most `concurrency` at once and, with `rate`, no faster than `rate` requests per second."""
        ids = list(range(users)) if isinstance(users, int) else list(users)
        order: list[tuple[int, int]] = []
        shuffle = random.Random(len(ids) * 31 + messages)
        for seq in range(first_seq, first_seq + messages):
            round_ = list(ids)
            shuffle.shuffle(round_)
            order += [(u, seq) for u in round_]
        pending = iter(enumerate(order))
        done: list[Sent] = []
        start = time.monotonic()

        async def sender() -> None:
            for index, (user, seq) in pending:
                if rate:
                    await asyncio.sleep(max(start + index / rate - time.monotonic(), 0.0))
                done.append(await self.send(user, seq))

        await asyncio.gather(*(sender() for _ in range(min(concurrency, len(order)))))
        return done

    async def admin_get(self, path: str, api: int = 0) -> httpx.Response:
        assert self._client is not None
        return await self._client.get(
            f"http://127.0.0.1:{self.api_ports[api]}{path}",
            headers={"Authorization": f"Bearer {self.secrets['ADMIN_TOKEN']}"},
        )

    # --- waiting for the system to settle ---

    async def queue_state(self) -> dict[str, int]:
        rows = await self.fetch(
            """SELECT status, callback_status, callback_deadline > now() AS open, count(*) FROM aiprocessingtask
               GROUP BY 1, 2, 3"""
        )
        state: Counter[str] = Counter()
        for status, callback, open_, count in rows:
            state[status] += count
            state[f"cb_{callback}"] += count
            if callback in ("pending", "sending") and open_:
                # Will still move before its deadline: a delivery, a retry, or a repeat of a dead sender's POST.
                state[f"cb_{callback}_open"] += count
        return dict(state)

    async def settle(self, timeout: float = 90.0, quiet: float = 3.0) -> dict[str, int]:
        """Wait until no task is pending or running, no callback is `pending` or `sending` before its deadline
        (a delivery, a retry or the repeat of a killed worker's POST still to come), and callbacks still
        `sending` past it have not moved for `quiet` seconds. Returns the final queue state; raises if it does
        not settle in time."""
        deadline = time.monotonic() + timeout
        last: dict[str, int] | None = None
        stable_since = time.monotonic()
        while True:
            state = await self.queue_state()
            if state != last:
                last, stable_since = state, time.monotonic()
            busy = sum(state.get(k, 0) for k in ("pending", "processing", "cb_pending_open", "cb_sending_open"))
            if not busy and time.monotonic() - stable_since >= (quiet if state.get("cb_sending") else 0.3):
                return state
            if time.monotonic() > deadline:
                raise AssertionError(f"the queue did not settle in {timeout:.0f} s: {state}")
            await asyncio.sleep(0.2)

    async def wait_for(self, condition: Any, timeout: float, what: str, interval: float = 0.05) -> float:
        """Wait for an async condition; returns the seconds it took."""
        started = time.monotonic()
        while not await condition():
            if time.monotonic() - started > timeout:
                raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
            await asyncio.sleep(interval)
        return time.monotonic() - started

    async def in_flight(self, proc: Proc) -> int:
        return await self.scalar(
            "SELECT count(*) FROM aiprocessingtask WHERE status = 'processing' AND locked_by LIKE $1",
            f"%:{proc.pid}:%", default=0,
        )

    # --- the audit ---

    async def audit(
        self, scenario: str, *, load: str, faults: str, expect_callbacks: bool = True, repeats_allowed: bool = False
    ) -> Report:
        """Check every request's fate; `expect_callbacks`: each acknowledged request must have got a final
        callback that Kakao accepted (answer or apology) rather than an answer kept for later;
        `repeats_allowed`: workers are stopped mid-send, so a URL may be POSTed again (the repeat of a POST
        whose outcome died with its worker); what the user saw must still be shown once. Every answer Kakao
        accepted must end recorded as delivered (a killed worker's POST is repeated, and its refusal recorded)."""
        tasks = await self.fetch(
            """SELECT t.status, t.callback_status, t.callback_url, t.ai_response, t.answer_delivered_at,
                      t.attempts, m.text, u.kakao_user_id
               FROM aiprocessingtask t JOIN message m ON m.id = t.message_id JOIN appuser u ON u.id = t.user_id"""
        )
        orphans = await self.scalar(
            """SELECT count(*) FROM message m WHERE m.role = 'user'
               AND NOT EXISTS (SELECT 1 FROM aiprocessingtask t WHERE t.message_id = m.id)"""
        )
        by_text: dict[str, list[asyncpg.Record]] = {}
        for row in tasks:
            by_text.setdefault(row["text"], []).append(row)

        delivered: Counter[tuple[int, int]] = Counter()
        apologised: set[tuple[int, int]] = set()
        final_at: dict[tuple[int, int], float] = {}
        wrong = 0
        problems: list[str] = []
        stray = [p for p in self.fakes.posts if p.token not in self.by_token]

        def deliver(to: Sent, found: list[str], at: float, *, own_only: bool) -> None:
            nonlocal wrong
            for text in found:
                for user, seq in {(int(u), int(s)) for u, s in MARKER.findall(text)}:
                    if user != to.user or (own_only and (user, seq) != to.key):
                        wrong += 1
                        if len(problems) < 10:
                            problems.append(f"user {to.user} msg {to.seq} got the answer of user {user} msg {seq}")
                        continue
                    delivered[(user, seq)] += 1
                    final_at.setdefault((user, seq), at)

        for post in self.fakes.posts:
            sent = self.by_token.get(post.token)
            if sent is None or post.status != "SUCCESS":
                continue
            found = _texts(post.body)
            if MARKER.search(" ".join(found)):
                deliver(sent, found, post.at, own_only=True)
            else:
                apologised.add(sent.key)
                final_at.setdefault(sent.key, post.at)
        for sent in self.sent:
            if sent.reply is not None and not sent.acked:
                deliver(sent, sent.reply_texts, sent.replied_at or sent.sent_at, own_only=False)

        lost = shown_twice = repeated_posts = refused_repeats = duplicate_answers = duplicate_intake = 0
        kept = intake_apologies = reply_failures = missing_callbacks = unrecorded = 0
        for sent in self.sent:
            posts = self.fakes.posts_to(sent.token)
            shown_twice += max(sum(1 for p in posts if p.status == "SUCCESS") - 1, 0)
            repeated_posts += max(len(posts) - 1, 0)
            refused_repeats += sum(1 for p in posts[1:] if p.status == "FAIL" and p.message == INVALID_TOKEN)
            duplicate_answers += max(delivered[sent.key] - 1, 0)
            rows = by_text.get(sent.text, [])
            duplicate_intake += max(len(rows) - 1, 0)
            if sent.status != 200 or sent.reply is None or (sent.latency or 0) > KAKAO_REPLY_LIMIT:
                reply_failures += 1
                if len(problems) < 10:
                    problems.append(f"reply to user {sent.user} msg {sent.seq}: status={sent.status} "
                                    f"error={sent.error} after {sent.latency or 0:.2f} s")
            if sent.command:
                continue  # its reply was checked above; what it delivered counts for the messages it answered
            if sent.acked and not any(p.status == "SUCCESS" for p in posts):
                missing_callbacks += 1
            row = rows[0] if rows else None
            if (row is not None and row["answer_delivered_at"] is None and row["status"] == "completed"
                    and any(p.status == "SUCCESS" and MARKER.search(" ".join(_texts(p.body))) for p in posts)):
                # Kakao took the answer but the worker could not record it (e.g. the database was down):
                # the user would get it a second time on a message sent after the callback deadline.
                unrecorded += 1
            if delivered[sent.key] or sent.key in apologised:
                continue
            if row is not None and row["status"] == "completed" and row["answer_delivered_at"] is None:
                kept += 1
            elif row is None and texts.CANNOT_STORE in sent.reply_texts:
                intake_apologies += 1
            else:
                lost += 1
                if len(problems) < 10:
                    state = dict(row) if row is not None else None
                    if state:
                        state.pop("ai_response", None)
                        state["callback_url"] = "***"
                    problems.append(f"lost: user {sent.user} msg {sent.seq} reply={sent.reply_texts or sent.status} "
                                    f"posts={[p.status for p in posts]} task={state}")

        early = sum(1 for p in self.fakes.posts if p.status == "FAIL" and p.age is not None
                    and p.age < self.fakes.kakao.not_before)
        unfinished = sum(1 for row in tasks if row["status"] in ("pending", "processing"))
        latencies = [final_at[s.key] - s.sent_at for s in self.sent if s.key in final_at]
        replies = [s.latency for s in self.sent if s.latency is not None]
        duplicates = shown_twice + duplicate_answers + duplicate_intake
        details: dict[str, Any] = {
            "answered": sum(1 for s in self.sent if delivered[s.key]),
            "apologies": len(apologised),
            "kept_for_next_message": kept,
            "intake_apologies": intake_apologies,
            "missing_callbacks": missing_callbacks,
            "delivered_but_unrecorded": unrecorded,
            "repeated_posts": repeated_posts,
            "refused_repeats": refused_repeats,
            "early_posts": early,
            "stray_posts": len(stray),
            "orphan_messages": orphans,
            "unfinished": unfinished,
            "reply_failures": reply_failures,
            "max_reply_s": round(max(replies), 3) if replies else None,
            "llm_requests": len(self.fakes.llm_requests),
            "llm_outcomes": dict(self.fakes.llm_outcomes),  # of the requests whose client waited for the answer
            **self.measures,
        }
        leaks = await self.scan_logs()
        details["log_leaks"] = len(leaks)
        checks = {
            "lost": lost, "callbacks shown twice": shown_twice, "answers given twice": duplicate_answers,
            "messages stored twice": duplicate_intake, "wrong-user answers": wrong,
            "skill replies failed or over 5 s": reply_failures, "callbacks before 1 s": early,
            "callbacks to unknown URLs": len(stray), "user messages without a task": orphans,
            "unfinished tasks": unfinished, "secrets or tokens in logs": len(leaks),
            "answers Kakao took but never recorded as delivered": unrecorded,
        }
        if expect_callbacks:
            checks["acknowledged requests without a final callback"] = missing_callbacks
        if not repeats_allowed:
            checks["callback URLs POSTed more than once"] = repeated_posts
        problems += [f"{what}: {count}" for what, count in checks.items() if count]
        problems += [f"leak: {leak}" for leak in leaks[:5]]
        return Report(scenario, load, faults, len(self.sent), lost, duplicates, wrong,
                      round(max(latencies), 2) if latencies else None, details, problems)

    async def scan_logs(self) -> list[str]:
        """Secrets and callback tokens found in the processes' output or the `logmessage` table."""
        needles = {name: value for name, value in self.secrets.items()}
        needles.update({f"callback token of user {s.user} msg {s.seq}": s.token for s in self.sent})
        needles.update(self.needles)
        sources = {path.name: path.read_text(errors="replace") for path in sorted(self.logs.glob("*.log"))}
        rows = await self.fetch("SELECT message FROM logmessage")
        sources["logmessage table"] = "\n".join(row["message"] for row in rows)
        return [f"{what} in {source}" for source, text in sources.items()
                for what, value in needles.items() if value in text]


def post_summary(posts: list[CallbackPost]) -> dict[str, int]:
    return dict(Counter(p.status for p in posts))
