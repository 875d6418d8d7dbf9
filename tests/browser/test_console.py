"""The console in a real browser: login, the simulator through /skill and the worker, retry, prompts, knowledge.

Every test also checks (fixture `console`) that the page made no request to another origin and had no script
error. Screenshots of every page are kept (see conftest.py).
"""

import csv
import io
import json
import re
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import ADMIN_TOKEN, Server, log_in
from tests.conftest import FIXTURES

pytestmark = pytest.mark.browser
FAQ = """질문,답변
환불은 며칠 걸리나요?,환불은 결제 취소 후 영업일 기준 3~5일 안에 처리돼요. 카드 결제는 카드사 사정에 따라 조금 늦어질 수 있어요.
배송은 언제 출발하나요?,평일 오후 2시 전에 결제하시면 당일 출고돼요. 제주와 도서 지역은 하루에서 이틀 더 걸려요.
교환할 수 있나요?,상품을 받으신 날부터 7일 안에 교환을 신청할 수 있어요.
"""


def test_login_refuses_a_wrong_token_then_logs_in_and_out(
    console: Page, server: Server, shot, expected_errors: list[str]
) -> None:
    expected_errors.append("status of 401 (Unauthorized)")
    console.goto(server.url + "/console/tasks")
    expect(console).to_have_url(re.compile(r"/console/login\?next=/console/tasks$"))
    expect(console.locator("html")).to_have_attribute("lang", "ko")
    shot(console, "login")
    console.get_by_label("관리자 토큰").fill("wrong-" + ADMIN_TOKEN)
    console.get_by_role("button", name="로그인").click()
    expect(console.get_by_role("alert")).to_have_text("관리자 토큰이 올바르지 않습니다.")

    console.get_by_label("관리자 토큰").fill(ADMIN_TOKEN)
    console.get_by_role("button", name="로그인").click()
    expect(console).to_have_url(server.url + "/console/tasks")
    cookie = next(c for c in console.context.cookies() if c["name"] == "console_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["expires"] > 0

    console.get_by_role("button", name="로그아웃").click()
    expect(console).to_have_url(server.url + "/console/login")
    console.goto(server.url + "/console")
    expect(console).to_have_url(re.compile(r"/console/login$"))
    assert not [c for c in console.context.cookies() if c["name"] == "console_session"]


def test_knowledge_upload_search_and_delete(console: Page, server: Server, shot, tmp_path: Path) -> None:
    log_in(console, server, "/console/knowledge")
    faq = tmp_path / "쇼핑몰_FAQ.csv"
    faq.write_text(FAQ, encoding="utf-8")
    upload = console.locator("form[action='/console/knowledge/upload']")
    upload.get_by_label("파일").set_input_files(str(faq))
    upload.get_by_role("button", name="올리기").click()
    expect(console.get_by_role("status")).to_have_text("문서를 올렸어요.")
    expect(console.get_by_role("cell", name="쇼핑몰_FAQ")).to_be_visible()

    text = console.locator("form[action='/console/knowledge/text']")
    text.get_by_label("제목").fill("영업시간")
    text.get_by_label("내용").fill("고객센터는 평일 오전 9시부터 오후 6시까지 전화를 받아요. 점심시간은 12시부터 1시까지예요.")
    text.get_by_role("button", name="추가").click()
    expect(console.get_by_role("cell", name="영업시간")).to_be_visible()

    console.get_by_label("질문").fill("환불은 며칠 걸려요?")
    console.get_by_role("button", name="검색").click()
    refund = console.locator("li.passage", has_text="영업일 기준 3~5일")
    expect(refund).to_be_visible()
    expect(refund.locator(".score")).to_have_text(re.compile(r"점수 [01]\.\d{3}"))
    shot(console, "knowledge", full_page=True)

    console.once("dialog", lambda dialog: dialog.accept())
    console.locator("tr", has_text="영업시간").get_by_role("button", name="삭제").click()
    expect(console.get_by_role("status")).to_have_text("문서를 삭제했어요.")
    expect(console.get_by_role("cell", name="영업시간")).to_have_count(0)


def test_simulator_shows_the_ack_then_the_workers_answer(console: Page, server: Server, shot) -> None:
    log_in(console, server, "/console/simulator")
    message = console.get_by_placeholder("메시지 입력")
    message.fill("환불은 며칠 걸려요?")
    message.press("Enter")
    chat = console.locator("#sim-chat")
    expect(chat.locator(".bubble.user")).to_have_text("환불은 며칠 걸려요?")
    expect(chat.locator(".bubble.ack")).to_have_text("AI가 답변을 생성하고 있어요!")
    answer = chat.locator(".bubble.bot:not(.ack)").first
    expect(answer).to_be_visible(timeout=30_000)
    # The answer came through the worker and the sink: the task is completed with its callback sent.
    user = console.get_by_label("사용자 ID").input_value()
    rows = server.sql(
        "SELECT t.status, t.callback_status, t.callback_url FROM aiprocessingtask t JOIN appuser u ON u.id = t.user_id"
        " WHERE u.kakao_user_id = ?", user,
    )
    assert [(status, callback) for status, callback, _ in rows] == [("completed", "sent")]
    assert rows[0][2].startswith("https://simulator.invalid/callback/")
    expect(answer).to_have_text(re.compile(r"\S"))
    shot(console, "simulator")

    # Without callback mode the reply itself carries the answer, as in Kakao's bot test console.
    console.get_by_label("콜백 모드 (AI 챗봇 콜백)").uncheck()
    message.fill("배송은 언제 출발해요?")
    message.press("Enter")
    expect(chat.locator(".bubble.user")).to_have_count(2)
    expect(chat.locator(".bubble.bot:not(.ack)")).to_have_count(2, timeout=15_000)
    expect(chat.locator(".bubble.ack")).to_have_count(1)

    console.set_viewport_size({"width": 390, "height": 844})
    expect(console.get_by_role("button", name="전송")).to_be_in_viewport()
    shot(console, "simulator-phone")


def test_retry_of_a_failed_task_from_the_tasks_page(console: Page, server: Server, shot) -> None:
    log_in(console, server, "/console/simulator")
    console.get_by_label("콜백 모드 (AI 챗봇 콜백)").uncheck()
    message = console.get_by_placeholder("메시지 입력")
    message.fill("재시도 시험용 질문이에요")
    message.press("Enter")
    expect(console.locator("#sim-chat .bubble.bot")).to_have_count(1, timeout=15_000)
    # A task the worker gave up on: the state a failed LLM call leaves behind.
    server.sql(
        "UPDATE aiprocessingtask SET status = 'failed', last_error = 'RetryableError: upstream 503' WHERE message_id ="
        " (SELECT id FROM message WHERE text = '재시도 시험용 질문이에요')"
    )

    console.goto(server.url + "/console/tasks")
    console.get_by_label("상태").select_option("failed")
    console.get_by_role("button", name="조회").click()
    expect(console.locator("tbody tr")).to_have_count(1)
    shot(console, "tasks")
    console.locator("tbody tr a").first.click()
    expect(console.locator("#task-status")).to_have_text("실패")
    expect(console.get_by_text("RetryableError: upstream 503")).to_be_visible()
    console.get_by_role("button", name="다시 시도").click()
    expect(console.get_by_role("status")).to_have_text("작업을 다시 대기열에 넣었어요.")
    # The worker answers it again.
    for _ in range(60):
        if console.locator("#task-status").inner_text() == "완료":
            break
        console.wait_for_timeout(250)
        console.reload()
    expect(console.locator("#task-status")).to_have_text("완료")
    shot(console, "task", full_page=True)


def test_prompt_versions_check_diff_and_activation(console: Page, server: Server, shot) -> None:
    log_in(console, server, "/console/prompts")
    form = console.locator("#prompt-form")
    form.get_by_label("이름").fill("상담")
    area = form.get_by_label("시스템 프롬프트")
    area.fill("너는 {bot_name}의 상담원이야. {고객명}님에게 답해.")
    expect(console.locator("#prompt-check")).to_contain_text("변수 오류")
    area.fill("너는 {bot_name}의 상담원이야. {user_name}님에게 친절하게 답해.\n참고: {context}")
    expect(console.locator("#prompt-check")).to_have_text("사용한 변수: {bot_name}, {context}, {user_name}")
    form.get_by_role("button", name="저장하고 활성화").click()
    expect(console.get_by_role("status")).to_have_text("새 버전을 저장하고 활성화했어요.")

    form.get_by_label("이름").fill("상담")
    form.get_by_label("시스템 프롬프트").fill("너는 {bot_name}의 상담원이야. {user_name}님에게 짧게 답해.\n참고: {context}")
    form.get_by_label("설명").fill("더 짧은 답")
    form.get_by_role("button", name="저장하고 활성화").click()
    versions = console.locator("[data-prompt='/상담'] li.version")
    expect(versions.filter(has_text="v2").locator(".badge")).to_have_text("활성")
    expect(versions.filter(has_text="v1").locator(".badge")).to_have_count(0)
    shot(console, "prompts", full_page=True)

    console.get_by_role("link", name="이전과 비교").click()
    expect(console.locator("pre.diff .add")).to_contain_text("짧게")
    expect(console.locator("pre.diff .del")).to_contain_text("친절하게")
    shot(console, "prompt-diff")
    console.go_back()

    versions.filter(has_text="v1").get_by_role("button", name="활성화").click()
    expect(console.get_by_role("status")).to_have_text("선택한 버전을 활성화했어요.")
    expect(versions.filter(has_text="v1").locator(".badge")).to_have_text("활성")
    expect(versions.filter(has_text="v2").locator(".badge")).to_have_count(0)


def test_dashboard_and_conversations_show_the_traffic(console: Page, server: Server, shot) -> None:
    log_in(console, server, "/console/simulator")
    console.get_by_label("콜백 모드 (AI 챗봇 콜백)").uncheck()
    message = console.get_by_placeholder("메시지 입력")
    message.fill("안녕하세요, 교환할 수 있나요?")
    message.press("Enter")
    expect(console.locator("#sim-chat .bubble.bot")).to_have_count(1, timeout=15_000)
    user = console.get_by_label("사용자 ID").input_value()

    console.get_by_role("link", name="대시보드").click()
    expect(console.get_by_role("heading", name="대시보드")).to_be_visible()
    # The numbers refresh themselves.
    with console.expect_response(f"{server.url}/console/dashboard/panel", timeout=15_000) as refreshed:
        pass
    assert refreshed.value.status == 200
    answered = console.locator(".stat", has_text="24시간 답변").locator("strong")
    assert int(answered.inner_text()) >= 1
    expect(console.locator("svg.chart").first).to_be_visible()
    shot(console, "dashboard", full_page=True)

    console.get_by_role("link", name="대화").click()
    console.get_by_label("사용자 ID 또는 이름").fill(user)
    console.get_by_role("button", name="찾기").click()
    console.get_by_role("link", name=user).click()
    expect(console.locator(".bubble.user")).to_contain_text("안녕하세요, 교환할 수 있나요?")
    expect(console.locator(".bubble.bot")).to_have_count(1)
    shot(console, "conversations", full_page=True)


def test_simulator_draws_cards_and_quick_replies_that_send_their_message(console: Page, server: Server) -> None:
    log_in(console, server, "/console/simulator")
    console.get_by_label("콜백 모드 (AI 챗봇 콜백)").uncheck()
    for name in ["skill_response_basiccard", "skill_response_carousel_basiccard", "skill_response_listcard",
                 "skill_response_multi_simpletext_quickreplies"]:
        body = json.loads((FIXTURES / f"{name}.json").read_text())
        console.evaluate("body => window.kakaoSimulator.render(body)", body)
    chat = console.locator("#sim-chat")
    expect(chat.locator(".kakao-card")).to_have_count(1 + 3 + 1)
    expect(chat.locator(".carousel .kakao-card")).to_have_count(3)
    expect(chat.locator(".kakao-card").first).to_contain_text("보물상자 안에는 뭐가 있을까")
    expect(chat.locator(".bubble.bot", has_text="등기부등본")).to_be_visible()
    # Images are never fetched (they live on Kakao's CDN): a placeholder stands in; web links stay inert.
    expect(chat.locator("img")).to_have_count(0)
    expect(chat.get_by_role("button", name="구경하기").first).to_be_disabled()

    quick = console.locator("#sim-quick").get_by_role("button")
    expect(quick).to_have_text(["더 알려줘", "처음으로"])
    quick.first.click()
    expect(chat.locator(".bubble.user")).to_have_text(["더 자세히 알려줘"])
    expect(console.locator("#sim-quick button")).to_have_count(0)
    chat.get_by_role("button", name="열어보기").first.click()
    expect(chat.locator(".bubble.user")).to_have_text(["더 자세히 알려줘", "짜잔! 우리가 찾던 보물입니다"])
    # Both went through /skill and the worker: each got its answer.
    expect(chat.locator(".bubble.bot:not(.kakao-card)")).to_have_count(2 + 2, timeout=15_000)


def test_usage_page_edits_a_bots_limit(console: Page, server: Server, shot) -> None:
    log_in(console, server, "/console")
    console.get_by_role("link", name="사용량").click()
    expect(console.get_by_role("heading", name="사용량", exact=True)).to_be_visible()
    form = console.locator("form[action='/console/usage/limits']")
    form.get_by_label("대상").select_option("bot")
    form.get_by_label("사용자 번호 또는 봇 ID").fill("default")
    form.get_by_label("월 토큰 한도").fill("2000000")
    form.get_by_label("정책").select_option("warn")
    form.get_by_role("button", name="저장").click()
    expect(console.get_by_role("status")).to_have_text("한도를 저장했어요.")
    row = console.locator("tr", has_text="봇 default")
    expect(row).to_contain_text("2,000,000")
    expect(row).to_contain_text("경고만")
    shot(console, "usage", full_page=True)


def test_api_key_is_shown_once_and_revoked(console: Page, server: Server, shot) -> None:
    log_in(console, server, "/console/api-keys")
    form = console.locator("form[action='/console/api-keys']")
    form.get_by_label("이름").fill("홈페이지 위젯")
    form.get_by_role("button", name="키 만들기").click()
    secret = console.locator("#new-key").inner_text()
    assert secret.startswith("kb-")
    shot(console, "api-keys")
    # Post/Redirect/Get: a reload shows the list again, without the secret and without a second key.
    expect(console).to_have_url(server.url + "/console/api-keys")
    console.reload()
    expect(console.locator("#new-key")).to_have_count(0)
    expect(console.locator("tr", has_text="홈페이지 위젯")).to_have_count(1)
    assert server.sql("SELECT count(*) FROM apikey WHERE name = ?", "홈페이지 위젯") == [(1,)]
    expect(console.locator("tr", has_text="홈페이지 위젯")).to_contain_text(secret[:11])
    console.once("dialog", lambda dialog: dialog.accept())
    console.locator("tr", has_text="홈페이지 위젯").get_by_role("button", name="폐기").click()
    expect(console.get_by_role("status")).to_have_text("키를 폐기했어요.")
    expect(console.locator("tr", has_text="홈페이지 위젯")).to_contain_text("폐기됨")


def test_chat_streams_the_answer_and_sends_the_history(console: Page, server: Server, shot) -> None:
    # The bot's knowledge, which the offline answers (no OpenAI key here) are written from.
    faqs = [dict(zip(("question", "answer"), row, strict=True)) for row in csv.reader(io.StringIO(FAQ))][1:]
    uploaded = httpx.post(
        server.url + "/api/knowledge/documents", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=60,
        json={"bot_id": "chat-page-bot", "title": "FAQ", "type": "faq", "faqs": faqs},
    )
    assert uploaded.status_code == 201, uploaded.text
    log_in(console, server, "/console/chat")
    expect(console.get_by_role("link", name="채팅")).to_have_attribute("aria-current", "page")
    console.get_by_label("봇 ID").fill("chat-page-bot")
    console.get_by_label("봇 ID").dispatch_event("change")
    message = console.get_by_label("메시지 입력")
    message.fill("환불은 며칠 걸려요?")
    message.press("Enter")
    log = console.locator("#chat-log")
    expect(log.locator(".bubble.user")).to_have_text("환불은 며칠 걸려요?")
    answer = log.locator(".bubble.bot").first
    # Finished: the caret is gone once [DONE] came, and the text arrived in many chunks (token by token).
    expect(answer).not_to_have_class(re.compile(r"streaming"), timeout=30_000)
    expect(answer).to_contain_text("영업일 기준 3~5일")
    assert int(answer.get_attribute("data-chunks") or 0) > 1
    first_answer = answer.inner_text()

    # The next message carries the conversation so far.
    with console.expect_request("**/console/chat/completions") as sent:
        message.fill("배송은 언제 출발하나요?")
        message.press("Enter")
    body = json.loads(sent.value.post_data or "{}")
    assert body["model"] == "chat-page-bot"
    assert body["messages"] == [
        {"role": "user", "content": "환불은 며칠 걸려요?"},
        {"role": "assistant", "content": first_answer},
        {"role": "user", "content": "배송은 언제 출발하나요?"},
    ]
    expect(log.locator(".bubble.bot:not(.streaming)")).to_have_count(2, timeout=30_000)
    # Stored like any chat answer, under the console's user of that bot.
    rows = server.sql(
        "SELECT m.role, m.text FROM message m JOIN appuser u ON u.id = m.user_id"
        " WHERE u.bot_id = ? AND u.kakao_user_id = 'console' ORDER BY m.id", "chat-page-bot",
    )
    assert [role for role, _ in rows] == ["user", "assistant", "user", "assistant"]
    assert rows[1][1] == first_answer
    shot(console, "chat")
