"""Prompt templates on both databases: versions, one active per (bot, name), resolution, admin API."""

import asyncio

import httpx
import pytest
from sqlalchemy import func, select

from app.db import Database
from app.models import PromptTemplate
from app.services import prompts
from tests.conftest import ADMIN_TOKEN, make_settings

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


async def active_count(db: Database, bot_id: str, name: str) -> int:
    async with db.sessions() as session:
        query = select(func.count()).where(
            PromptTemplate.bot_id == bot_id, PromptTemplate.name == name, PromptTemplate.is_active
        )
        return (await session.scalar(query)) or 0


async def create(db: Database, name: str, text: str = "안내: {utterance}", bot_id: str = "") -> PromptTemplate:
    async with db.sessions() as session:
        return await prompts.create_version(session, name=name, system_prompt=text, bot_id=bot_id)


# --- service ---------------------------------------------------------------------------------------


async def test_seeded_default_is_active(db: Database) -> None:
    async with db.sessions() as session:
        (default,) = await prompts.list_templates(session)
    assert (default.bot_id, default.name, default.version, default.is_active) == ("", "default", 1, True)
    prompts.validate_template(default.system_prompt)


async def test_versions_increase_and_only_the_newest_is_active(db: Database) -> None:
    first = await create(db, "배송 문의")
    second = await create(db, "배송 문의", "두 번째 {context}")
    other_bot = await create(db, "배송 문의", bot_id="bot-a")
    assert (first.version, second.version, other_bot.version) == (1, 2, 1)
    async with db.sessions() as session:
        listed = await prompts.versions(session, "배송 문의", bot_id="")
    assert [(t.version, t.is_active) for t in listed] == [(2, True), (1, False)]
    assert await active_count(db, "", "배송 문의") == 1
    assert await active_count(db, "bot-a", "배송 문의") == 1


async def test_activate_switches_the_active_version(db: Database) -> None:
    first = await create(db, "faq")
    await create(db, "faq")
    async with db.sessions() as session:
        activated = await prompts.activate(session, first.id or 0)
        assert activated is not None and activated.is_active
        again = await prompts.activate(session, first.id or 0)
        assert again is not None and again.is_active
        assert await prompts.activate(session, 999_999) is None
        listed = await prompts.versions(session, "faq")
    assert [(t.version, t.is_active) for t in listed] == [(2, False), (1, True)]


async def test_concurrent_creation_keeps_versions_unique_and_one_active(db: Database) -> None:
    results = await asyncio.gather(*(create(db, "동시", f"버전 {i}") for i in range(6)))
    assert sorted(t.version for t in results) == [1, 2, 3, 4, 5, 6]
    assert await active_count(db, "", "동시") == 1


async def test_concurrent_activation_leaves_one_active(db: Database) -> None:
    created = [await create(db, "경쟁") for _ in range(4)]

    async def activate(template_id: int) -> None:
        async with db.sessions() as session:
            await prompts.activate(session, template_id)

    await asyncio.gather(*(activate(t.id or 0) for t in created[:3]))
    assert await active_count(db, "", "경쟁") == 1


async def test_create_rejects_invalid_template(db: Database) -> None:
    with pytest.raises(prompts.TemplateError):
        await create(db, "broken", "{nope}")
    async with db.sessions() as session:
        assert await prompts.versions(session, "broken") == []


async def test_resolution_order(db: Database) -> None:
    async def resolve(bot_id: str, block: str | None) -> tuple[str, str]:
        async with db.sessions() as session:
            template = await prompts.resolve_template(session, bot_id=bot_id, block_name=block)
        return template.bot_id, template.name

    assert await resolve("bot-a", "배송") == ("", "default")
    assert await resolve("bot-a", None) == ("", "default")
    await create(db, "default", bot_id="bot-a")
    assert await resolve("bot-a", "배송") == ("bot-a", "default")
    assert await resolve("bot-b", "배송") == ("", "default")
    await create(db, "배송")
    assert await resolve("bot-a", "배송") == ("", "배송")
    assert await resolve("bot-b", "배송") == ("", "배송")
    await create(db, "배송", bot_id="bot-a")
    assert await resolve("bot-a", "배송") == ("bot-a", "배송")
    assert await resolve("bot-a", "환불") == ("bot-a", "default")


async def test_resolution_without_any_default_is_permanent(db: Database) -> None:
    async with db.sessions() as session:
        await session.execute(PromptTemplate.__table__.update().values(is_active=False))
        await session.commit()
        with pytest.raises(prompts.PermanentError):
            await prompts.resolve_template(session, bot_id="bot-a", block_name=None)


# --- admin API -------------------------------------------------------------------------------------


async def test_admin_api_round_trip(client: httpx.AsyncClient) -> None:
    body = {"name": "배송 문의", "system_prompt": "{bot_name} 배송 안내. {{중괄호}}", "description": "배송"}
    created = await client.post("/admin/prompts", json=body, headers=AUTH)
    assert created.status_code == 201, created.text
    first = created.json()
    assert (first["name"], first["bot_id"], first["version"], first["is_active"]) == ("배송 문의", "", 1, True)

    second = (await client.post("/admin/prompts", json=body | {"system_prompt": "v2"}, headers=AUTH)).json()
    assert second["version"] == 2

    active = (await client.get("/admin/prompts", headers=AUTH)).json()
    assert {(t["name"], t["version"]) for t in active} == {("default", 1), ("배송 문의", 2)}
    every = (await client.get("/admin/prompts", params={"all": "true"}, headers=AUTH)).json()
    assert len(every) == 3

    listed = await client.get("/admin/prompts/배송 문의", headers=AUTH)
    assert [t["version"] for t in listed.json()] == [2, 1]

    activated = await client.post(f"/admin/prompts/{first['id']}/activate", headers=AUTH)
    assert activated.status_code == 200 and activated.json()["is_active"] is True
    listed = (await client.get("/admin/prompts/배송 문의", headers=AUTH)).json()
    assert [(t["version"], t["is_active"]) for t in listed] == [(2, False), (1, True)]


async def test_admin_api_bot_specific_versions(client: httpx.AsyncClient) -> None:
    body = {"name": "default", "system_prompt": "봇 전용 {utterance}", "bot_id": "bot-a"}
    created = (await client.post("/admin/prompts", json=body, headers=AUTH)).json()
    assert (created["bot_id"], created["version"]) == ("bot-a", 1)
    only_bot = (await client.get("/admin/prompts", params={"bot_id": "bot-a"}, headers=AUTH)).json()
    assert [(t["bot_id"], t["name"]) for t in only_bot] == [("bot-a", "default")]
    both = (await client.get("/admin/prompts/default", headers=AUTH)).json()
    assert [(t["bot_id"], t["version"]) for t in both] == [("", 1), ("bot-a", 1)]


async def test_admin_api_not_found(client: httpx.AsyncClient) -> None:
    assert (await client.get("/admin/prompts/없는이름", headers=AUTH)).status_code == 404
    assert (await client.post("/admin/prompts/424242/activate", headers=AUTH)).status_code == 404


@pytest.mark.parametrize(
    ("system_prompt", "expected"),
    [
        ("안녕 {username}", "{username}"),
        ("{user_name:>5}", "{user_name:>5}"),
        ("{0}", "{0}"),
        ("{context.x}", "{context.x}"),
        ("짝 없는 }", "unbalanced braces"),
    ],
)
async def test_admin_api_rejects_bad_placeholders(
    client: httpx.AsyncClient, system_prompt: str, expected: str
) -> None:
    response = await client.post("/admin/prompts", json={"name": "x", "system_prompt": system_prompt}, headers=AUTH)
    assert (response.status_code, response.json()["code"]) == (422, "invalid_template")
    assert expected in response.json()["detail"]


@pytest.mark.parametrize(
    "body",
    [
        {"name": "a/b", "system_prompt": "x"},
        {"name": "", "system_prompt": "x"},
        {"name": "n" * 101, "system_prompt": "x"},
        {"name": "ok", "system_prompt": ""},
        {"name": "ok", "system_prompt": "x" * 20_001},
        {"name": "ok", "system_prompt": "x", "description": "d" * 501},
        {"name": "ok", "system_prompt": "x", "bot_id": "b" * 101},
        {"name": "ok", "system_prompt": "x", "extra": 1},
    ],
)
async def test_admin_api_size_and_shape_limits(client: httpx.AsyncClient, body: dict[str, object]) -> None:
    assert (await client.post("/admin/prompts", json=body, headers=AUTH)).status_code == 422


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": ADMIN_TOKEN},
        {"Authorization": f"Basic {ADMIN_TOKEN}"},
        {"Authorization": "Bearer 토큰".encode()},
    ],
)
async def test_admin_api_requires_the_token(client: httpx.AsyncClient, headers: dict[str, str | bytes]) -> None:
    for response in (
        await client.get("/admin/prompts", headers=headers),
        await client.post("/admin/prompts", json={"name": "x", "system_prompt": "y"}, headers=headers),
        await client.post("/admin/prompts/1/activate", headers=headers),
    ):
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"


async def test_admin_api_off_without_token(database_url: str) -> None:
    from app.main import create_app

    app = create_app(make_settings(database_url, admin_token=None))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        response = await client.get("/admin/prompts", headers=AUTH)
    await app.state.db.dispose()
    assert response.status_code == 503
    assert response.json() == {"detail": "ADMIN_TOKEN is not configured", "code": "admin_disabled"}
