"""The practical floor for "reply and enqueue": parse the JSON, one asyncpg INSERT, reply."""

import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from app.db import pg_dsn

ACK = {"version": "2.0", "useCallback": True, "data": {"text": "AI가 답변을 생성하고 있어요!"}}


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    app.state.pool = await asyncpg.create_pool(pg_dsn(os.environ["DATABASE_URL"]), min_size=10, max_size=10)
    await app.state.pool.execute("CREATE TABLE IF NOT EXISTS bench_baseline (id bigserial PRIMARY KEY, body jsonb)")
    yield
    await app.state.pool.close()


app = FastAPI(lifespan=lifespan)


@app.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@app.post("/skill")
async def skill(request: Request) -> JSONResponse:
    body = json.loads(await request.body())
    await request.app.state.pool.execute("INSERT INTO bench_baseline (body) VALUES ($1)", json.dumps(body))
    return JSONResponse(ACK)
