"""Prometheus scrape endpoint; queue depth is read from the database at scrape time."""

from fastapi import APIRouter, Response
from loguru import logger
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from app import metrics, queue
from app.api.deps import SessionDep
from app.models import utcnow

router = APIRouter(tags=["metrics"])


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def scrape(session: SessionDep) -> Response:
    try:
        stats = await queue.stats(session, now=utcnow())
    except Exception as exc:  # noqa: BLE001 - metrics must still be served when the database is down
        logger.warning("Queue depth unavailable for /metrics: {}", type(exc).__name__)
    else:
        for status, count in stats.by_status.items():
            metrics.QUEUE_DEPTH.labels(status).set(count)
        metrics.OLDEST_PENDING.set(stats.oldest_pending_seconds or 0.0)
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
