"""사용량: tokens and cost by day and model, top users, limits and alerts, and editing a limit."""

from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from app.api.deps import SessionDep
from app.console.charts import bar_list, column_chart
from app.console.deps import ConsoleDep, render
from app.errors import NotFound
from app.models import utcnow
from app.services.usage import Policy, Scope, admin, periods, statistics
from app.services.usage.periods import Period

router = APIRouter(prefix="/console/usage", include_in_schema=False)
PERIOD_LABELS = {Period.DAY: "오늘", Period.WEEK: "이번 주", Period.MONTH: "이번 달"}
POLICY_LABELS = {Policy.BLOCK: "다 쓰면 차단", Policy.WARN: "경고만"}
SCOPE_LABELS = {Scope.USER: "사용자", Scope.BOT: "봇"}
MAX_LIMIT = 10**15


async def _page(
    request: Request, session: SessionDep, *, period: Period = Period.MONTH, bot: str = "", edit_user: int | None = None,
    error: str | None = None, status_code: int = 200,
) -> HTMLResponse:
    settings = request.app.state.settings
    today = periods.local_day(utcnow(), ZoneInfo(settings.usage_timezone))
    stats = await statistics.statistics(session, period=period, days=periods.span(period, today), bot_id=bot or None)
    return render(request, "usage.html", {
        "stats": stats,
        "period": period,
        "bot": bot,
        "periods": PERIOD_LABELS,
        "policies": POLICY_LABELS,
        "scopes": SCOPE_LABELS,
        "day_chart": column_chart(
            [(f"{d.date.month}/{d.date.day}", d.total_tokens) for d in stats.by_day], title="날짜별 토큰"
        ),
        "model_chart": bar_list([(m.model, m.total_tokens) for m in stats.by_model], title="모델별 토큰"),
        "limits": await admin.list_limits(session, settings),
        "alerts": await admin.list_alerts(session, bot_id=bot or None, limit=50),
        "edit_user": edit_user,
        "error": error,
        "notice": "한도를 저장했어요." if request.query_params.get("saved") else None,
    }, status_code=status_code)


@router.get("", response_class=HTMLResponse)
async def usage(
    request: Request,
    session: SessionDep,
    _: ConsoleDep,
    period: Period = Period.MONTH,
    bot: Annotated[str, Query(max_length=100)] = "",
    edit_user: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
) -> HTMLResponse:
    return await _page(request, session, period=period, bot=bot.strip(), edit_user=edit_user)


@router.post("/limits", response_class=HTMLResponse)
async def put_limit(
    request: Request,
    session: SessionDep,
    _: ConsoleDep,
    scope: Annotated[Scope, Form()],
    holder: Annotated[str, Form(min_length=1, max_length=100)],
    monthly_token_limit: Annotated[str, Form(max_length=20)] = "",
    policy: Annotated[str, Form(max_length=10)] = "",
) -> Response:
    """Set (or, with both fields empty, remove) the monthly token limit of one user or bot."""
    holder = holder.strip()
    limit = monthly_token_limit.strip().replace(",", "")
    if scope not in SCOPE_LABELS or (scope == Scope.USER and not holder.isdigit()):
        return await _page(request, session, error="사용자는 번호(사용자 목록의 #), 봇은 봇 ID로 지정해 주세요.",
                           status_code=422)
    if limit and not (limit.isdigit() and int(limit) <= MAX_LIMIT):
        return await _page(request, session, error="한도는 0 이상의 정수로 입력해 주세요.", status_code=422)
    if policy and policy not in POLICY_LABELS:
        return await _page(request, session, error="정책을 목록에서 골라 주세요.", status_code=422)
    try:
        async with session.begin():
            await admin.put_limit(
                session, scope, holder, monthly_token_limit=int(limit) if limit else None, policy=policy or None,
                now=utcnow(),
            )
    except NotFound:
        return await _page(request, session, error=f"사용자 #{holder}를 찾을 수 없어요.", status_code=404)
    return RedirectResponse("/console/usage?saved=1", status_code=303)
