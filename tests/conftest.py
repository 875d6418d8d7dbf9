"""Shared fixtures: every database test runs on SQLite and on a fresh PostgreSQL database."""

import asyncio
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest
import respx
from alembic import command
from alembic.config import Config
from fastapi import FastAPI
from sqlalchemy.engine import make_url

from app.config import Settings
from app.db import Database, pg_dsn
from app.main import create_app

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures" / "kakao"
DEFAULT_PG_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
ADMIN_TOKEN = "test-admin-token"


def pg_base_url() -> str:
    return os.environ.get("TEST_DATABASE_URL") or DEFAULT_PG_URL


async def _pg_admin(sql: str) -> None:
    conn = await asyncpg.connect(pg_dsn(pg_base_url()), timeout=5)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def migrate(url: str) -> None:
    """Apply every Alembic revision to the database at `url`."""
    cfg = Config(str(ROOT / "alembic.ini"))
    cfg.attributes["database_url"] = url
    command.upgrade(cfg, "head")


def make_settings(database_url: str, **overrides: object) -> Settings:
    """Settings isolated from the developer's environment and `.env`."""
    values: dict[str, object] = {
        "database_url": database_url,
        "admin_token": ADMIN_TOKEN,
        "openai_api_key": None,
        "kakao_skill_secret": None,
        "debug": False,
        # e5 costs ~0.15 s per uploaded chunk; the tests of the rerank and of the default settings turn it on.
        "semantic_rerank": "none",
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.fixture(scope="session")
def postgres_available() -> bool:
    try:
        asyncio.run(_pg_admin("SELECT 1"))
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL is required in CI but unreachable at {pg_base_url()}: {exc}")
        return False
    return True


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("tmpl") / "template.db"
    migrate(f"sqlite+aiosqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def postgres_template(postgres_available: bool) -> Iterator[str | None]:
    if not postgres_available:
        yield None
        return
    name = f"tmpl_{uuid.uuid4().hex[:12]}"
    asyncio.run(_pg_admin(f'CREATE DATABASE "{name}"'))
    migrate(str(make_url(pg_base_url()).set(database=name).render_as_string(hide_password=False)))
    yield name
    asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    sqlite_template: Path,
    postgres_template: str | None,
) -> Iterator[str]:
    """A freshly migrated database of each backend, dropped after the test."""
    if request.param == "sqlite":
        path = tmp_path / "app.db"
        shutil.copyfile(sqlite_template, path)
        yield f"sqlite+aiosqlite:///{path}"
        return
    if postgres_template is None:
        pytest.skip(f"PostgreSQL unreachable at {pg_base_url()} (set TEST_DATABASE_URL)")
    name = f"t_{uuid.uuid4().hex[:12]}"
    asyncio.run(_pg_admin(f'CREATE DATABASE "{name}" TEMPLATE "{postgres_template}"'))
    yield make_url(pg_base_url()).set(database=name).render_as_string(hide_password=False)
    asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return make_settings(database_url, chroma_path=str(tmp_path / "chroma"))


@pytest.fixture
async def db(settings: Settings) -> AsyncIterator[Database]:
    database = Database(settings)
    yield database
    await database.dispose()


@pytest.fixture
def app(settings: Settings) -> FastAPI:
    return create_app(settings)


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c
    await app.state.db.dispose()


@pytest.fixture
def kakao() -> Iterator[respx.Route]:
    """Kakao's callback endpoint (the queue tests' URL), answering SUCCESS."""
    from tests.queue_helpers import CALLBACK_URL, KAKAO_SUCCESS

    with respx.mock(assert_all_called=False) as mock:
        yield mock.post(CALLBACK_URL).respond(200, json=KAKAO_SUCCESS)
