"""Liveness with a database round trip."""

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text

from app.api.deps import DatabaseDep

router = APIRouter(tags=["health"])


@router.get("/health", summary="Liveness and database reachability")
async def health(db: DatabaseDep) -> JSONResponse:
    try:
        async with db.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    except Exception as exc:  # any failure means "not healthy"; the reason is enough
        return JSONResponse({"status": "error", "database": type(exc).__name__}, status_code=503)
    return JSONResponse({"status": "ok", "database": "ok"})
