"""대시보드: queue depth, workers, the last day's answers, latency and callback outcomes, this month's tokens."""

from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from markupsafe import Markup

from app import queue
from app.api.deps import SessionDep
from app.console.charts import bar_list, column_chart
from app.console.deps import SEOUL, ConsoleDep, render
from app.models import CallbackStatus, TaskStatus, utcnow
from app.queue.activity import activity_since
from app.services.usage import periods, statistics
from app.services.usage.periods import Period

router = APIRouter(prefix="/console", include_in_schema=False)
STATUS_LABELS = {"pending": "대기", "processing": "처리 중", "completed": "완료", "failed": "실패"}
CALLBACK_LABELS = {
    "sent": "전달됨", "pending": "전달 대기", "sending": "전달 중", "failed": "실패", "expired": "만료",
}
CALLBACK_COLORS = {"전달됨": "#16a34a", "실패": "#dc2626", "만료": "#f59e0b"}


@dataclass(frozen=True, slots=True)
class Latency:
    p50: float | None
    p95: float | None


def _percentiles(values: list[float]) -> Latency:
    if not values:
        return Latency(None, None)
    ordered = sorted(values)

    def pick(quantile: float) -> float:
        return ordered[min(int(quantile * len(ordered)), len(ordered) - 1)]

    return Latency(pick(0.5), pick(0.95))


def _hourly(answered_by_hour: dict[str, int], now: datetime) -> list[tuple[str, float]]:
    """Answers per hour over the last 24 hours, labelled with the Korean hour."""
    end = now.replace(minute=0, second=0, microsecond=0, tzinfo=UTC)
    hours = [end - timedelta(hours=23 - i) for i in range(24)]
    return [(f"{h.astimezone(SEOUL).hour}시", answered_by_hour.get(h.strftime("%Y-%m-%d %H"), 0)) for h in hours]


async def _summary(request: Request, session: SessionDep) -> dict[str, object]:
    settings = request.app.state.settings
    now = utcnow()
    stats = await queue.stats(session, now=now)
    workers = await queue.list_workers(session)
    # As GET /admin/health: a worker beats three times per lease, two missed leases mean it is gone.
    alive_since = now - timedelta(seconds=2 * settings.task_lease_seconds)
    day = await activity_since(session, now - timedelta(hours=24))
    usage_zone = ZoneInfo(settings.usage_timezone)
    month = periods.span(Period.MONTH, periods.local_day(now, usage_zone))
    usage = await statistics.statistics(session, period=Period.MONTH, days=month)
    callbacks = Counter({k: v for k, v in day.callbacks.items() if k != CallbackStatus.NONE})
    return {
        "queue": [(STATUS_LABELS.get(s, s), n) for s, n in stats.by_status.items()],
        "oldest_pending": stats.oldest_pending_seconds,
        "workers_alive": sum(w.last_seen_at >= alive_since for w in workers),
        "answered": day.by_status.get(TaskStatus.COMPLETED, 0),
        "failed": day.by_status.get(TaskStatus.FAILED, 0),
        "latency_sample": len(day.recent),
        "pickup": _percentiles([(t.started_at - t.created_at).total_seconds() for t in day.recent if t.started_at]),
        "end_to_end": _percentiles([
            ((t.answer_delivered_at or t.completed_at) - t.created_at).total_seconds()
            for t in day.recent
            if t.completed_at
        ]),
        "usage": usage,
        "month": f"{month.start.year}년 {month.start.month}월",
        "hourly_chart": column_chart(_hourly(day.answered_by_hour, now), title="시간별 답변 수 (최근 24시간)"),
        "queue_chart": bar_list(
            [(STATUS_LABELS.get(s, s), n) for s, n in stats.by_status.items()], title="상태별 작업 수"
        ),
        "callback_chart": (
            bar_list(
                [(CALLBACK_LABELS.get(s, s), n) for s, n in callbacks.most_common()],
                title="콜백 결과 (최근 24시간)",
                colors=CALLBACK_COLORS,
            )
            if callbacks
            else Markup("")
        ),
    }


@router.get("", response_class=HTMLResponse)
async def dashboard(request: Request, session: SessionDep, _: ConsoleDep) -> HTMLResponse:
    return render(request, "dashboard.html", await _summary(request, session))


@router.get("/dashboard/panel", response_class=HTMLResponse)
async def dashboard_panel(request: Request, session: SessionDep, _: ConsoleDep) -> HTMLResponse:
    """The numbers and charts alone, fetched by the page every few seconds."""
    return render(request, "dashboard_panel.html", await _summary(request, session))
