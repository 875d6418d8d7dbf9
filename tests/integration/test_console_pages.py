"""Console pages on real data: tasks (filter, detail, retry), conversations, prompts, knowledge, dashboard."""

import re
from datetime import timedelta
from zoneinfo import ZoneInfo

import httpx
from fastapi import FastAPI
from sqlalchemy import select, update

from app.models import AIProcessingTask, EventLog, PromptTemplate, TaskStatus, UsageLimit, utcnow
from app.services.chat import keys
from app.services.usage import ModelCall, admin, periods, record_calls
from app.services.usage.schemas import PriceIn
from tests.console_helpers import HTML, log_in


async def _say(client: httpx.AsyncClient, user: str, text: str, bot: str = "shop") -> None:
    body = {"bot": {"id": bot}, "userRequest": {"utterance": text, "user": {"id": user}}}
    assert (await client.post("/skill", json=body)).status_code == 200


async def _tasks(app: FastAPI) -> list[AIProcessingTask]:
    async with app.state.db.sessions() as session:
        return list((await session.execute(select(AIProcessingTask).order_by(AIProcessingTask.created_at))).scalars())


async def _use(app: FastAPI, user_id: int, *, input_tokens: int, output_tokens: int, bot: str = "shop") -> None:
    """One priced model call of the user, as the worker records it."""
    now = utcnow()
    async with app.state.db.sessions.begin() as session:
        await admin.put_prices(session, [PriceIn(model="gpt-test", input_usd_per_million=0.0,
                                                 output_usd_per_million=20_000.0)], now=now)
        await record_calls(session, [ModelCall("answer", "gpt-test", input_tokens, output_tokens)], now=now,
                           day=periods.local_day(now, ZoneInfo("Asia/Seoul")), bot_id=bot, user_id=user_id)


async def test_tasks_filter_by_status_bot_and_user_and_show_the_detail(app: FastAPI, client: httpx.AsyncClient) -> None:
    app.state.settings.skill_sync_wait_seconds = 0  # no worker here: the tasks stay pending
    await _say(client, "kim", "환불 문의드려요")
    await _say(client, "lee", "배송 언제 와요?")
    await _say(client, "lee", "다른 봇에 보낸 말", bot="other")
    first, second, third = await _tasks(app)
    async with app.state.db.sessions.begin() as session:
        await session.execute(
            update(AIProcessingTask).where(AIProcessingTask.id == first.id)
            .values(status=TaskStatus.FAILED, last_error="PermanentError: 401 invalid api key")
        )
    await log_in(client)

    def shown(page: str) -> set[str]:
        return set(re.findall(r'href="/console/tasks/([0-9a-f-]{36})"', page))

    assert shown((await client.get("/console/tasks")).text) == {str(t.id) for t in (first, second, third)}
    assert shown((await client.get("/console/tasks?status=failed")).text) == {str(first.id)}
    assert shown((await client.get("/console/tasks?bot=shop")).text) == {str(first.id), str(second.id)}
    assert shown((await client.get("/console/tasks?user=lee&bot=shop")).text) == {str(second.id)}
    assert shown((await client.get("/console/tasks?user=nobody")).text) == set()

    detail = await client.get(f"/console/tasks/{first.id}")
    assert "환불 문의드려요" in detail.text and "PermanentError: 401 invalid api key" in detail.text
    assert "다시 시도" in detail.text
    assert "다시 시도" not in (await client.get(f"/console/tasks/{second.id}")).text
    missing = await client.get("/console/tasks/00000000-0000-0000-0000-000000000000", headers=HTML)
    assert missing.status_code == 404 and "찾을 수 없어요" in missing.text


async def test_retry_puts_a_failed_task_back_and_records_it(app: FastAPI, client: httpx.AsyncClient) -> None:
    app.state.settings.skill_sync_wait_seconds = 0
    await _say(client, "kim", "환불 문의드려요")
    await _say(client, "kim", "또 다른 질문")
    failed, pending = await _tasks(app)
    async with app.state.db.sessions.begin() as session:
        await session.execute(
            update(AIProcessingTask).where(AIProcessingTask.id == failed.id).values(status=TaskStatus.FAILED)
        )
    csrf = await log_in(client)
    done = await client.post(f"/console/tasks/{failed.id}/retry", data={"csrf_token": csrf})
    assert done.status_code == 303 and done.headers["location"] == f"/console/tasks/{failed.id}?retried=1"
    assert "작업을 다시 대기열에 넣었어요." in (await client.get(done.headers["location"])).text
    refused = await client.post(f"/console/tasks/{pending.id}/retry", data={"csrf_token": csrf})
    assert refused.status_code == 409 and "실패한 작업만 다시 시도할 수 있어요." in refused.text
    statuses = {t.id: t.status for t in await _tasks(app)}
    assert statuses == {failed.id: TaskStatus.PENDING, pending.id: TaskStatus.PENDING}
    async with app.state.db.sessions() as session:
        events = list(await session.scalars(select(EventLog.detail).where(EventLog.event_type == "task_retried_by_admin")))
    assert events == [str(failed.id)]


async def test_conversations_show_a_users_messages_as_bubbles(app: FastAPI, client: httpx.AsyncClient) -> None:
    app.state.settings.skill_sync_wait_seconds = 0
    await _say(client, "kakao-user-77", "안녕하세요 <b>굵게</b>")
    await log_in(client)
    users = (await client.get("/console/conversations?q=user-77")).text
    user_id = re.search(r'href="/console/conversations/(\d+)"', users).group(1)  # type: ignore[union-attr]
    assert "kakao-user-77" in users
    assert "kakao-user-77" not in (await client.get("/console/conversations?q=nobody")).text
    page = (await client.get(f"/console/conversations/{user_id}")).text
    assert '<div class="bubble user">안녕하세요 &lt;b&gt;굵게&lt;/b&gt;' in page  # escaped, never markup
    assert (await client.get("/console/conversations/999999", headers=HTML)).status_code == 404


async def test_prompts_check_variables_create_diff_and_activate(app: FastAPI, client: httpx.AsyncClient) -> None:
    csrf = await log_in(client)
    check = await client.post("/console/prompts/check", data={"system_prompt": "{고객}님"}, headers={"X-CSRF-Token": csrf})
    assert check.json()["ok"] is False and check.json()["placeholder"] == "{고객}"
    good = await client.post(
        "/console/prompts/check", data={"system_prompt": "{user_name}님, {context}"}, headers={"X-CSRF-Token": csrf}
    )
    assert good.json() == {"ok": True, "message": "사용한 변수: {context}, {user_name}"}

    bad = await client.post("/console/prompts", data={"csrf_token": csrf, "name": "상담", "system_prompt": "{x.y}"})
    assert bad.status_code == 422 and "변수를 확인해 주세요" in bad.text
    for text in ["친절하게 답해 {user_name}", "짧게 답해 {user_name}"]:
        created = await client.post(
            "/console/prompts", data={"csrf_token": csrf, "name": "상담", "bot_id": "shop", "system_prompt": text}
        )
        assert created.status_code == 303
    async with app.state.db.sessions() as session:
        v1, v2 = (await session.scalars(
            select(PromptTemplate).where(PromptTemplate.name == "상담").order_by(PromptTemplate.version)
        )).all()
    assert (v1.is_active, v2.is_active) == (False, True)
    diff = (await client.get(f"/console/prompts/diff?a={v1.id}&b={v2.id}")).text
    assert '<span class="del">-친절하게 답해 {user_name}</span>' in diff
    assert '<span class="add">+짧게 답해 {user_name}</span>' in diff

    activated = await client.post(f"/console/prompts/{v1.id}/activate", data={"csrf_token": csrf})
    assert activated.status_code == 303
    async with app.state.db.sessions() as session:
        active = await session.scalars(
            select(PromptTemplate.version).where(PromptTemplate.name == "상담", PromptTemplate.is_active)
        )
        assert list(active) == [1]
    missing = await client.post("/console/prompts/999999/activate", data={"csrf_token": csrf})
    assert missing.status_code == 404


async def test_knowledge_upload_search_and_delete(app: FastAPI, client: httpx.AsyncClient) -> None:
    app.state.settings.embedding_backend = "local"
    csrf = await log_in(client)
    faq = "질문,답변\n환불은 며칠 걸리나요?,영업일 기준 3~5일 안에 환불돼요.\n배송비는 얼마예요?,3만 원 이상은 무료예요.\n"
    uploaded = await client.post(
        "/console/knowledge/upload", data={"csrf_token": csrf, "bot_id": "shop"},
        files={"file": ("faq.csv", faq.encode(), "text/csv")},
    )
    assert uploaded.status_code == 303
    added = await client.post(
        "/console/knowledge/text",
        data={"csrf_token": csrf, "bot_id": "shop", "title": "영업시간", "text": "평일 9시부터 6시까지 전화를 받아요."},
    )
    assert added.status_code == 303
    refused = await client.post(
        "/console/knowledge/upload", data={"csrf_token": csrf, "bot_id": "shop"},
        files={"file": ("virus.exe", b"MZ...", "application/octet-stream")},
    )
    assert refused.status_code == 415 and "문서를 올리지 못했어요" in refused.text
    no_file = await client.post("/console/knowledge/upload", data={"csrf_token": csrf, "bot_id": "shop"},
                                files={"file": ("", b"", "text/plain")})
    assert no_file.status_code == 422 and "choose a file" in no_file.text
    app.state.settings.knowledge_max_upload_bytes = 2048
    too_big = await client.post(
        "/console/knowledge/upload", data={"csrf_token": csrf, "bot_id": "shop"},
        files={"file": ("big.txt", "가".encode() * 1000, "text/plain")},
    )
    assert too_big.status_code == 413 and "too large" in too_big.text
    huge = await client.post(
        "/console/knowledge/upload", content=b"x" * 70_000,
        headers={"content-type": "multipart/form-data; boundary=b", "X-CSRF-Token": csrf},
    )
    assert huge.status_code == 413 and huge.json()["code"] == "document_too_large"

    page = (await client.get("/console/knowledge", params={"bot": "shop", "q": "환불 며칠 걸려요"})).text
    assert "영업일 기준 3~5일" in page and re.search(r"점수 0\.\d{3}|점수 1\.000", page)
    doc_ids = re.findall(r'action="/console/knowledge/([0-9a-f-]{36})/delete"', page)
    assert len(doc_ids) == 2
    deleted = await client.post(f"/console/knowledge/{doc_ids[0]}/delete", data={"csrf_token": csrf})
    assert deleted.status_code == 303
    after = (await client.get("/console/knowledge?bot=shop")).text
    assert re.findall(r'action="/console/knowledge/([0-9a-f-]{36})/delete"', after) == doc_ids[1:]


async def test_dashboard_counts_answers_latency_and_callbacks(app: FastAPI, client: httpx.AsyncClient) -> None:
    app.state.settings.skill_sync_wait_seconds = 0
    await _say(client, "kim", "안녕하세요")
    await _say(client, "kim", "두 번째 질문")
    answered, _ = await _tasks(app)
    async with app.state.db.sessions.begin() as session:
        await session.execute(
            update(AIProcessingTask).where(AIProcessingTask.id == answered.id).values(
                status=TaskStatus.COMPLETED, started_at=answered.created_at + timedelta(milliseconds=250),
                completed_at=answered.created_at + timedelta(seconds=2), callback_status="sent",
                input_tokens=120, output_tokens=30,
            )
        )
    await _use(app, answered.user_id, input_tokens=120, output_tokens=30)
    await log_in(client)
    page = await client.get("/console")
    assert page.status_code == 200 and "<svg" in page.text and 'data-refresh="/console/dashboard/panel"' in page.text
    panel = (await client.get("/console/dashboard/panel")).text
    numbers = dict(re.findall(r'<span class="label">([^<]+)</span><strong>([^<]+)</strong>', panel))
    assert numbers["24시간 답변"] == "1"
    assert numbers["대기열 지연 (p50 / p95)"] == "250 ms"
    assert numbers["전체 응답 시간 (p50 / p95)"] == "2.0초"
    assert numbers[next(k for k in numbers if k.endswith("토큰 (입력 / 출력)"))] == "120"
    assert numbers[next(k for k in numbers if k.endswith("비용"))] == "$0.60"  # 30 output tokens × $20,000/M
    assert re.search(r'<text[^>]*>전달됨</text><rect[^>]*/><text[^>]*>1</text>', panel)
    assert re.search(r'<text[^>]*>대기</text><rect[^>]*/><text[^>]*>1</text>', panel)
    hour = (answered.created_at + timedelta(seconds=2)).astimezone(ZoneInfo("Asia/Seoul")).hour
    assert re.findall(r"<title>(\d+시: [1-9]\d*)</title>", panel) == [f"{hour}시: 1"]


async def test_usage_shows_tokens_cost_top_users_and_edits_a_limit(app: FastAPI, client: httpx.AsyncClient) -> None:
    app.state.settings.skill_sync_wait_seconds = 0
    await _say(client, "heavy-user", "안녕하세요")
    (task,) = await _tasks(app)
    await _use(app, task.user_id, input_tokens=1000, output_tokens=500)
    csrf = await log_in(client)
    page = (await client.get("/console/usage")).text
    numbers = dict(re.findall(r'<span class="label">([^<]+)</span><strong[^>]*>([^<]+)</strong>', page))
    assert numbers["요청"] == "1" and numbers["토큰 (입력 / 출력)"] == "1,000"
    assert numbers["비용"] == "$10.00"  # 500 output tokens × $20,000/M
    assert "heavy-user" in page and "gpt-test" in page and "<svg" in page
    assert "heavy-user" not in (await client.get("/console/usage?bot=other")).text

    saved = await client.post("/console/usage/limits", data={
        "csrf_token": csrf, "scope": "user", "holder": str(task.user_id), "monthly_token_limit": "50,000",
        "policy": "warn",
    })
    assert saved.status_code == 303
    bot = await client.post("/console/usage/limits", data={
        "csrf_token": csrf, "scope": "bot", "holder": "shop", "monthly_token_limit": "1000000",
    })
    assert bot.status_code == 303
    async with app.state.db.sessions() as session:
        limits = {(r.scope, r.holder_id): (r.monthly_token_limit, r.policy)
                  for r in (await session.scalars(select(UsageLimit))).all()}
    assert limits == {("user", str(task.user_id)): (50_000, "warn"), ("bot", "shop"): (1_000_000, None)}
    assert "50,000" in (await client.get("/console/usage")).text

    for bad in [{"scope": "user", "holder": "heavy-user"}, {"scope": "user", "holder": "1", "monthly_token_limit": "-5"},
                {"scope": "bot", "holder": "shop", "policy": "maybe"}]:
        refused = await client.post("/console/usage/limits", data={"csrf_token": csrf, **bad})
        assert refused.status_code == 422, bad
    missing = await client.post("/console/usage/limits",
                                data={"csrf_token": csrf, "scope": "user", "holder": "999999"})
    assert missing.status_code == 404 and "#999999" in missing.text

    removed = await client.post("/console/usage/limits", data={"csrf_token": csrf, "scope": "bot", "holder": "shop"})
    assert removed.status_code == 303
    async with app.state.db.sessions() as session:
        assert [r.scope for r in (await session.scalars(select(UsageLimit))).all()] == ["user"]


async def test_api_keys_create_shown_once_list_and_revoke(app: FastAPI, client: httpx.AsyncClient) -> None:
    csrf = await log_in(client)
    created = await client.post("/console/api-keys", data={
        "csrf_token": csrf, "name": "홈페이지 위젯", "bot_id": "shop", "monthly_token_limit": "100000",
    })
    # Post/Redirect/Get: the secret is not in the POST's response but on the one page after the redirect.
    assert created.status_code == 303 and created.headers["location"] == "/console/api-keys"
    assert "kb-" not in created.text
    flash = client.cookies.get("console_flash", path="/console/api-keys")
    assert flash and "kb-" not in flash  # signed, so not forgeable; it holds the secret for a minute at most
    shown = await client.get("/console/api-keys")
    secret = re.search(r'<code id="new-key">([^<]+)</code>', shown.text).group(1)  # type: ignore[union-attr]
    assert secret.startswith("kb-") and "console_flash=\"\";" in shown.headers["set-cookie"]
    assert "Max-Age=0" in shown.headers["set-cookie"]
    # A reload: the secret is gone and no second key was made.
    listing = (await client.get("/console/api-keys")).text
    assert "홈페이지 위젯" in listing and secret not in listing and secret[:11] in listing
    async with app.state.db.sessions() as session:
        assert [k.name for k in await keys.list_keys(session)] == ["홈페이지 위젯"]
    models = await client.get("/v1/models", headers={"Authorization": f"Bearer {secret}"})
    assert models.status_code == 200
    key_id = re.search(r'action="/console/api-keys/(\d+)/revoke"', listing).group(1)  # type: ignore[union-attr]
    revoked = await client.post(f"/console/api-keys/{key_id}/revoke", data={"csrf_token": csrf})
    assert revoked.status_code == 303
    assert "폐기됨" in (await client.get("/console/api-keys")).text
    assert (await client.get("/v1/models", headers={"Authorization": f"Bearer {secret}"})).status_code == 401
    assert (await client.post("/console/api-keys/999999/revoke", data={"csrf_token": csrf})).status_code == 404


async def test_a_key_secret_flash_shows_only_in_the_session_that_made_it(client: httpx.AsyncClient) -> None:
    csrf = await log_in(client)
    await client.post("/console/api-keys", data={"csrf_token": csrf, "name": "위젯", "bot_id": "shop"})
    flash = client.cookies.get("console_flash", path="/console/api-keys")
    assert flash
    # Another console session (a new login) carrying the same flash cookie does not see the secret.
    client.cookies.clear()
    await log_in(client)
    client.cookies.set("console_flash", flash, path="/console/api-keys")
    assert 'id="new-key"' not in (await client.get("/console/api-keys")).text
