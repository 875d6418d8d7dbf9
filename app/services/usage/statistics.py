"""Usage statistics: rolled days from `usagedaily`, the days not rolled yet (today) from `usagerecord`.

Each question is one or two aggregate statements over that union, so a month of millions of calls reads the
rollup plus today's rows.
"""

from collections import defaultdict
from datetime import date, timedelta
from typing import Any

from app.queue import Conn
from app.services.usage.periods import Span
from app.services.usage.schemas import DayUsage, ModelUsage, ReportRow, Statistics, TopUser
from app.services.usage.statements import as_date, run

TOP_USERS = 10

_ROLLED = "SELECT day FROM usagerolledday WHERE day >= :start AND day < :end"


class UsageRows:
    """The usage rows of a span (optionally one bot's or one user's), as a subquery with its parameters."""

    def __init__(self, days: Span, *, bot_id: str | None = None, user_id: int | None = None) -> None:
        self.days = days
        self.params: dict[str, Any] = {"start": days.start, "end": days.end}
        self.filters = ""
        if bot_id is not None:
            self.filters += " AND bot_id = :bot_id"
            self.params["bot_id"] = bot_id
        if user_id is not None:
            self.filters += " AND user_id = :user_id"
            self.params["user_id"] = user_id
        self.raw_days: list[date] = []

    async def load(self, conn: Conn) -> "UsageRows":
        """Find the days of the span not rolled up yet: those are read from the usage rows themselves."""
        rolled = {as_date(d) for d in (await run(conn, _ROLLED, self.params)).scalars()}
        day = self.days.start
        while day < self.days.end:
            if day not in rolled:
                self.params[f"day{len(self.raw_days)}"] = day
                self.raw_days.append(day)
            day += timedelta(days=1)
        return self

    @property
    def sql(self) -> str:
        daily = (
            "SELECT day, bot_id, user_id, model, requests, cache_hits, input_tokens, output_tokens, total_tokens,"
            f" cost_usd, unpriced FROM usagedaily WHERE day >= :start AND day < :end{self.filters}"
        )
        if not self.raw_days:
            return daily
        in_days = ", ".join(f":day{i}" for i in range(len(self.raw_days)))
        # A day rolled meanwhile is read from the rollup only.
        raw = (
            "SELECT day, bot_id, COALESCE(user_id, 0) AS user_id, model, 1 AS requests,"
            " CASE WHEN cache_hit THEN 1 ELSE 0 END AS cache_hits, input_tokens, output_tokens, total_tokens,"
            " COALESCE(cost_usd, 0) AS cost_usd, CASE WHEN cost_usd IS NULL THEN 1 ELSE 0 END AS unpriced"
            f" FROM usagerecord r WHERE day IN ({in_days}){self.filters}"
            " AND NOT EXISTS (SELECT 1 FROM usagerolledday d WHERE d.day = r.day)"
        )
        return f"{daily} UNION ALL {raw}"


def _sums(prefix: str = "") -> str:
    return (
        f"SUM({prefix}requests) AS requests, SUM({prefix}cache_hits) AS cache_hits,"
        f" SUM({prefix}input_tokens) AS input_tokens, SUM({prefix}output_tokens) AS output_tokens,"
        f" SUM({prefix}total_tokens) AS total_tokens, SUM({prefix}cost_usd) AS cost_usd,"
        f" SUM({prefix}unpriced) AS unpriced"
    )


def _int(value: Any) -> int:
    return int(value or 0)


def _money(value: Any) -> float:
    return round(float(value or 0), 8)


async def by_day_and_model(conn: Conn, rows: UsageRows) -> list[dict[str, Any]]:
    sql = f"SELECT day, model, {_sums()} FROM ({rows.sql}) u GROUP BY day, model"
    return [dict(r) for r in (await run(conn, sql, rows.params)).mappings()]


async def by_user(conn: Conn, rows: UsageRows, *, limit: int, kakao_user_id: str | None = None) -> list[TopUser]:
    """Users by total tokens, most first (rows without a user are left out)."""
    params = {**rows.params, "n": limit}
    only = ""
    if kakao_user_id is not None:
        only = " AND user_id IN (SELECT id FROM appuser WHERE kakao_user_id = :kakao_user_id)"
        params["kakao_user_id"] = kakao_user_id
    # Summed per user id first (a hash on one integer), then only the top rows meet appuser.
    sql = (
        "SELECT t.user_id, a.kakao_user_id, a.bot_id, t.total_tokens, t.cost_usd FROM ("
        f" SELECT user_id, SUM(total_tokens) AS total_tokens, SUM(cost_usd) AS cost_usd FROM ({rows.sql}) u"
        f" WHERE user_id <> 0{only} GROUP BY user_id ORDER BY total_tokens DESC, user_id LIMIT :n"
        ") t JOIN appuser a ON a.id = t.user_id ORDER BY t.total_tokens DESC, t.user_id"
    )
    return [
        TopUser(user_id=r["user_id"], kakao_user_id=r["kakao_user_id"], bot_id=r["bot_id"],
                total_tokens=_int(r["total_tokens"]), cost_usd=_money(r["cost_usd"]))
        for r in (await run(conn, sql, params)).mappings()
    ]


def days_of(groups: list[dict[str, Any]]) -> list[DayUsage]:
    days: dict[date, list[float]] = defaultdict(lambda: [0, 0, 0.0])
    for g in groups:
        day = days[as_date(g["day"])]  # type: ignore[index]
        day[0] += _int(g["requests"])
        day[1] += _int(g["total_tokens"])
        day[2] += float(g["cost_usd"] or 0)
    return [DayUsage(date=d, requests=int(v[0]), total_tokens=int(v[1]), cost_usd=_money(v[2]))
            for d, v in sorted(days.items())]


async def statistics(conn: Conn, *, period: str, days: Span, bot_id: str | None = None) -> Statistics:
    """Totals, per model, per day and the top users of a span."""
    rows = await UsageRows(days, bot_id=bot_id).load(conn)
    groups = await by_day_and_model(conn, rows)
    models: dict[str, dict[str, Any]] = {}
    for g in groups:
        m = models.setdefault(g["model"], defaultdict(float))
        for key in ("requests", "cache_hits", "input_tokens", "output_tokens", "total_tokens", "cost_usd", "unpriced"):
            m[key] += float(g[key] or 0)
    by_model = [
        ModelUsage(model=name, requests=int(m["requests"]), input_tokens=int(m["input_tokens"]),
                   output_tokens=int(m["output_tokens"]), total_tokens=int(m["total_tokens"]),
                   cost_usd=None if m["unpriced"] else _money(m["cost_usd"]))
        for name, m in sorted(models.items(), key=lambda item: -item[1]["total_tokens"])
    ]

    def total(key: str) -> float:
        return sum(m[key] for m in models.values())

    return Statistics(
        period=period, start=days.start, end=days.end,
        requests=int(total("requests")), cache_hits=int(total("cache_hits")),
        input_tokens=int(total("input_tokens")), output_tokens=int(total("output_tokens")),
        total_tokens=int(total("total_tokens")), cost_usd=_money(total("cost_usd")),
        unpriced_requests=int(total("unpriced")),
        by_model=by_model, by_day=days_of(groups), top_users=await by_user(conn, rows, limit=TOP_USERS),
    )


async def report_rows(conn: Conn, days: Span) -> list[ReportRow]:
    """Per bot, user and model: the monthly report's lines."""
    rows = await UsageRows(days).load(conn)
    sql = (
        f"SELECT u.bot_id, u.user_id, a.kakao_user_id, u.model, {_sums('u.')} FROM ({rows.sql}) u"
        " LEFT JOIN appuser a ON a.id = u.user_id"
        " GROUP BY u.bot_id, u.user_id, a.kakao_user_id, u.model ORDER BY u.bot_id, total_tokens DESC, u.model"
    )
    return [
        ReportRow(bot_id=r["bot_id"], user_id=r["user_id"] or None, kakao_user_id=r["kakao_user_id"],
                  model=r["model"], requests=_int(r["requests"]), input_tokens=_int(r["input_tokens"]),
                  output_tokens=_int(r["output_tokens"]), total_tokens=_int(r["total_tokens"]),
                  cost_usd=_money(r["cost_usd"]), unpriced_requests=_int(r["unpriced"]))
        for r in (await run(conn, sql, rows.params)).mappings()
    ]
