"""Worker heartbeats: which workers are alive, how busy, and whether they hear NOTIFY."""

from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import WorkerHeartbeat
from app.queue.connection import Conn, dialect

_heartbeat = WorkerHeartbeat.__table__


async def beat(
    session: Conn,
    *,
    worker_id: str,
    hostname: str,
    pid: int,
    started_at: datetime,
    now: datetime,
    in_flight: int,
    listen_connected: bool,
) -> None:
    """Insert or refresh this worker's heartbeat row."""
    upsert = pg_insert if dialect(session) == "postgresql" else sqlite_insert
    live = {"last_seen_at": now, "in_flight": in_flight, "listen_connected": listen_connected}
    stmt = upsert(_heartbeat).values(worker_id=worker_id, hostname=hostname, pid=pid, started_at=started_at, **live)
    await session.execute(stmt.on_conflict_do_update(index_elements=[_heartbeat.c.worker_id], set_=live))


async def forget_worker(session: Conn, worker_id: str) -> None:
    await session.execute(delete(_heartbeat).where(_heartbeat.c.worker_id == worker_id))


async def prune_workers(session: Conn, *, before: datetime) -> int:
    """Delete heartbeat rows of workers silent since `before`."""
    result = await session.execute(delete(_heartbeat).where(_heartbeat.c.last_seen_at < before))
    return result.rowcount


async def list_workers(session: AsyncSession) -> list[WorkerHeartbeat]:
    stmt = select(WorkerHeartbeat).order_by(WorkerHeartbeat.last_seen_at.desc())
    return list((await session.execute(stmt)).scalars())
