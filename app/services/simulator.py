"""The console simulator's callback sink: callback URLs only the console can mint, delivered into `eventlog` instead
of over HTTP, so trying the bot in callback mode opens no callback host to the outside.

A sink URL is `https://simulator.invalid/callback/<id>.<timestamp>.<signature>`, signed with a key derived from
ADMIN_TOKEN and valid for a few minutes. A Kakao request cannot forge one; without ADMIN_TOKEN none is accepted.
`.invalid` never resolves (RFC 2606), so even a process without the sink could not send it anywhere.
"""

import hashlib
import hmac
import json
import secrets
import uuid
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from itsdangerous import BadSignature, TimestampSigner
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.config import Settings
from app.kakao import CallbackOutcome, CallbackResult, SkillResponse
from app.models import EventLog
from app.services import events

SINK_HOST = "simulator.invalid"
_SINK_PREFIX = f"https://{SINK_HOST}/callback/"
# A sink URL is checked at intake and again at delivery, which Kakao's window ends within a minute of arrival.
SINK_MAX_AGE_SECONDS = 180
DELIVERED = "simulator_callback"


def _signer(settings: Settings) -> TimestampSigner | None:
    if not settings.admin_token:
        return None
    key = hmac.new(settings.admin_token.encode(), b"console-simulator-sink", hashlib.sha256).digest()
    return TimestampSigner(key, salt="simulator-sink")


def new_sink(settings: Settings) -> tuple[str, str]:
    """A fresh sink id and its callback URL; only the console (which holds ADMIN_TOKEN) calls this."""
    signer = _signer(settings)
    if signer is None:
        raise RuntimeError("the simulator sink needs ADMIN_TOKEN")
    sink_id = secrets.token_hex(16)
    return sink_id, _SINK_PREFIX + signer.sign(sink_id).decode()


def sink_id(url: str, settings: Settings) -> str | None:
    """The sink id of a fresh console-minted URL; None for every other URL (forged, expired, or not a sink)."""
    signer = _signer(settings)
    if signer is None or not url.startswith(_SINK_PREFIX):
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.query or parts.fragment or "?" in url or "#" in url:
        return None
    try:
        return signer.unsign(url.removeprefix(_SINK_PREFIX), max_age=SINK_MAX_AGE_SECONDS).decode()
    except (BadSignature, UnicodeDecodeError):
        return None


class SimulatorSink:
    """Receives the worker's callback POSTs for sink URLs: records the body as an event, answers like Kakao."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def deliver(
        self, *, sink: str, task_id: uuid.UUID, kind: str, body: SkillResponse | dict[str, Any]
    ) -> CallbackResult:
        response = body if isinstance(body, SkillResponse) else SkillResponse.model_validate(body)
        if response.use_callback is not None:
            raise ValueError("a callback body must not carry useCallback")
        # The sink id leads the JSON so `delivered` can find it by prefix (see below).
        detail = json.dumps(
            {"sink": sink, "task_id": str(task_id), "kind": kind, "body": response.to_dict()}, ensure_ascii=False
        )
        async with self._sessions() as session, session.begin():
            await events.record_event(session, DELIVERED, detail=detail)
        return CallbackResult(CallbackOutcome.SENT, 200, "SUCCESS", "OK")


async def delivered(session: AsyncSession, sink: str) -> list[dict[str, Any]]:
    """What the sink received for `sink`, oldest first: `{kind, body, received_at}` each."""
    rows = await session.execute(
        select(EventLog.detail, EventLog.created_at)
        .where(EventLog.event_type == DELIVERED, EventLog.detail.startswith(f'{{"sink": "{sink}"', autoescape=True))
        .order_by(EventLog.id)
    )
    return [_delivery(detail, created_at) for detail, created_at in rows.all()]


def _delivery(detail: str, created_at: datetime) -> dict[str, Any]:
    data = json.loads(detail)
    return {"kind": data["kind"], "body": data["body"], "received_at": created_at.isoformat()}
