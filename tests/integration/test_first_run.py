"""Schema on first run: run_server.py migrates any database itself; uvicorn and the worker refuse an outdated
schema with one line; /health reports a schema that is not at head."""

import asyncio
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest
from sqlalchemy import inspect, text
from sqlalchemy.engine import make_url

from app.db import Database, pg_dsn
from app.main import create_app
from app.schema import (
    UPGRADE_COMMAND,
    UPGRADE_LOCK_KEY,
    SchemaNotReady,
    check_at_head,
    current_revision,
    head_revision,
    upgrade_to_head,
)
from app.services import texts
from tests.conftest import FIXTURES, ROOT, _pg_admin, make_settings, pg_base_url
from tests.e2e.harness import _INHERITED, Proc
from tests.fake_services import free_port
from tests.queue_helpers import eventually

FIRST_REVISION = "0001"  # an ancestor of every later head


@pytest.fixture
def new_pg_url(postgres_available: bool) -> Iterator[str]:
    """An empty PostgreSQL database (no template), dropped afterwards."""
    if not postgres_available:
        pytest.skip(f"PostgreSQL unreachable at {pg_base_url()} (set TEST_DATABASE_URL)")
    name = f"new_{uuid.uuid4().hex[:12]}"
    asyncio.run(_pg_admin(f'CREATE DATABASE "{name}"'))
    yield make_url(pg_base_url()).set(database=name).render_as_string(hide_password=False)
    asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(params=["sqlite", "postgresql"])
def new_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database nothing has touched: a SQLite file in a folder that does not exist yet, or an empty one."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'data' / 'app.db'}"
    return request.getfixturevalue("new_pg_url")


def child_env(database_url: str, workdir: Path, **settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k in _INHERITED}
    return {
        **env,
        "PYTHONPATH": str(ROOT),
        "PYTHONUNBUFFERED": "1",
        "DATABASE_URL": database_url,
        "CHROMA_PATH": str(workdir / "chroma"),
        "OPENAI_API_KEY": "",
        **settings,
    }


async def schema_of(database_url: str) -> tuple[str | None, set[str]]:
    """The database's revision and its tables."""
    db = Database(make_settings(database_url))
    try:
        async with db.engine.connect() as conn:
            tables = await conn.run_sync(lambda sync_conn: set(inspect(sync_conn).get_table_names()))
            return await current_revision(conn), tables
    finally:
        await db.dispose()


# --- run_server.py on a new database ----------------------------------------------------------------------


async def test_run_server_migrates_a_new_database_and_answers(new_database_url: str, tmp_path: Path) -> None:
    port = free_port()
    env = child_env(
        new_database_url, tmp_path, HOST="127.0.0.1", PORT=str(port), EMBEDDED_WORKER="true",
        SKILL_SYNC_WAIT_SECONDS="4.5",
    )
    server = Proc("run_server", [sys.executable, str(ROOT / "run_server.py")], env, tmp_path / "server.log", tmp_path)
    request = json.loads((FIXTURES / "skill_request_basic.json").read_text())  # no callbackUrl: the reply waits
    replies: list[str] = []
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:

            async def healthy() -> bool:
                assert server.running, server.log.read_text()
                try:
                    return (await client.get("/health")).status_code == 200
                except httpx.TransportError:
                    return False

            async def say(utterance: str) -> str:
                request["userRequest"]["utterance"] = utterance
                reply = (await client.post("/skill", json=request)).json()
                replies.append(reply["template"]["outputs"][0]["simpleText"]["text"])
                return replies[-1]

            async def answered() -> bool:
                return await say(texts.CHECK_ANSWER) not in (texts.PREPARING, texts.STILL_WORKING)

            await eventually(healthy, timeout=60, interval=0.1)
            if await say("오늘 서울 날씨 어때?") == texts.PREPARING:  # a slow machine: the answer comes next
                await eventually(answered, timeout=30, interval=0.2)
    finally:
        assert await server.stop() == 0, server.log.read_text()
    assert texts.CANNOT_STORE not in replies, server.log.read_text()
    assert replies[-1] not in (texts.PREPARING, texts.STILL_WORKING)
    revision, tables = await schema_of(new_database_url)
    assert revision == head_revision()
    assert {"appuser", "conversation", "message", "aiprocessingtask", "alembic_version"} <= tables


# One replica's start-up: what run_server.py does before serving.
UPGRADE = "import asyncio; from app.config import get_settings; from app.schema import upgrade_to_head; " \
    "asyncio.run(upgrade_to_head(get_settings()))"


async def test_replicas_upgrading_a_new_database_together_take_turns(new_pg_url: str, tmp_path: Path) -> None:
    # The test holds the lock until every replica waits for it, so all of them start the upgrade at once.
    conn = await asyncpg.connect(pg_dsn(new_pg_url), timeout=5)
    replicas: list[Proc] = []
    try:
        await conn.execute("SELECT pg_advisory_lock($1)", UPGRADE_LOCK_KEY)
        env = child_env(new_pg_url, tmp_path)
        for i in range(3):
            replicas.append(Proc(f"upgrade{i}", [sys.executable, "-c", UPGRADE], env, tmp_path / f"{i}.log", tmp_path))

        async def all_waiting() -> bool:
            waiting = await conn.fetchval("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")
            return waiting == len(replicas)

        await eventually(all_waiting, timeout=60, interval=0.1)
        await conn.execute("SELECT pg_advisory_unlock($1)", UPGRADE_LOCK_KEY)
        codes = [await replica.wait(timeout=60) for replica in replicas]
    finally:
        await conn.close()
        for replica in replicas:
            await replica.stop()
    assert codes == [0] * len(replicas), [replica.log.read_text() for replica in replicas]
    assert (await schema_of(new_pg_url))[0] == head_revision()


# --- the API and the worker alone never migrate --------------------------------------------------------------


def test_api_and_worker_refuse_a_database_that_was_never_migrated(new_database_url: str, tmp_path: Path) -> None:
    env = child_env(new_database_url, tmp_path)
    commands = {
        "uvicorn": [sys.executable, "-m", "uvicorn", "app.main:app", "--port", str(free_port())],
        "worker": [sys.executable, "-m", "worker"],
    }
    procs = {
        name: subprocess.Popen(args, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for name, args in commands.items()
    }
    errors: dict[str, str] = {}
    try:
        for name, proc in procs.items():
            errors[name] = proc.communicate(timeout=60)[1]
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    expected = f"database schema is at none, this code needs {head_revision()}: run `{UPGRADE_COMMAND}`"
    for name, proc in procs.items():
        hints = [line for line in errors[name].splitlines() if UPGRADE_COMMAND in line]
        assert proc.returncode != 0, f"{name}: {errors[name]}"
        assert len(hints) == 1 and hints[0].endswith(expected), f"{name}: {errors[name]}"
        assert "Traceback" not in errors[name], f"{name}: {errors[name]}"
    assert asyncio.run(schema_of(new_database_url))[0] is None


async def test_api_lifespan_fails_without_starting_the_app(new_database_url: str, tmp_path: Path) -> None:
    app = create_app(make_settings(new_database_url, chroma_path=str(tmp_path / "chroma")))
    sent = await lifespan(app, ["lifespan.startup"])
    assert sent == [{"type": "lifespan.startup.failed", "message": ""}]


async def test_api_lifespan_runs_at_head(database_url: str, tmp_path: Path) -> None:
    app = create_app(make_settings(database_url, chroma_path=str(tmp_path / "chroma")))
    sent = await lifespan(app, ["lifespan.startup", "lifespan.shutdown"])
    assert [m["type"] for m in sent] == ["lifespan.startup.complete", "lifespan.shutdown.complete"]


async def lifespan(app: object, events: list[str]) -> list[dict[str, object]]:
    """Messages the app sends while the server delivers `events`, as uvicorn would."""
    incoming = [{"type": event} for event in events]
    sent: list[dict[str, object]] = []

    async def receive() -> dict[str, object]:
        return incoming.pop(0)

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"}, "state": {}}
    await app(scope, receive, send)  # type: ignore[operator]
    return sent


# --- /health ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("stamp", "status"), [(FIRST_REVISION, "behind"), ("ffffffff", "unknown")])
async def test_health_is_503_when_the_schema_is_not_at_head(
    database_url: str, db: Database, client: httpx.AsyncClient, stamp: str, status: str
) -> None:
    async with db.engine.begin() as conn:
        await conn.execute(text("UPDATE alembic_version SET version_num = :stamp"), {"stamp": stamp})
    response = await client.get("/health")
    assert response.status_code == 503
    assert response.json() == {
        "status": "error", "database": "ok", "schema": status, "current": stamp, "head": head_revision()
    }
    with pytest.raises(SchemaNotReady, match=f"database schema is at {stamp}, "):
        await check_at_head(db.engine)


async def test_health_is_503_on_a_new_database_and_200_once_upgraded(new_database_url: str, tmp_path: Path) -> None:
    settings = make_settings(new_database_url, chroma_path=str(tmp_path / "chroma"))
    app = create_app(settings)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as client:
        before = await client.get("/health")
        await upgrade_to_head(settings)
        after = await client.get("/health")
    await app.state.db.dispose()
    assert before.status_code == 503
    assert before.json() == {"status": "error", "database": "ok", "schema": "behind", "current": None,
                             "head": head_revision()}
    assert (after.status_code, after.json()) == (200, {"status": "ok", "database": "ok"})


# --- the knowledge CLI on a new database ------------------------------------------------------------------


def test_knowledge_cli_loads_faqs_into_a_new_database_and_searches_them(new_database_url: str, tmp_path: Path) -> None:
    """A new user may load the knowledge base before ever starting the server: the CLI migrates like run_server.py."""
    faq = tmp_path / "faq.csv"
    faq.write_text("질문,답변\n배송은 얼마나 걸리나요?,결제 후 2~3일 안에 받아요.\n환불은 언제 되나요?,3영업일 안에 돼요.\n",
                   encoding="utf-8")
    broken = tmp_path / "broken.csv"
    broken.write_text("질문,답변\n답변 없는 질문,\n", encoding="utf-8")
    env = child_env(new_database_url, tmp_path, SEMANTIC_RERANK="none")

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "app.services.knowledge", *args]
        return subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)

    loaded = cli("ingest", str(faq), str(broken), "--bot", "shop")
    assert loaded.returncode == 1, loaded.stderr  # one file failed, the other went in
    assert f"FAILED {broken}" in loaded.stdout and "1 of 2 files ingested for bot 'shop'" in loaded.stdout
    found = cli("search", "택배 며칠 걸려요", "--bot", "shop")
    assert found.returncode == 0, found.stderr
    assert found.stdout.splitlines()[1].strip().startswith("'질문: 배송은 얼마나 걸리나요?")
    revision, tables = asyncio.run(schema_of(new_database_url))
    assert revision == head_revision() and "knowledgedocument" in tables
