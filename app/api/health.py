"""Liveness with a database round trip that also reads the schema revision."""

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from app.api.deps import DatabaseDep
from app.schema import schema_state

router = APIRouter(tags=["health"])


@router.get(
    "/health",
    summary="Liveness, database reachability and schema revision",
    responses={503: {"description": "The database is unreachable or its schema is not at this code's head"}},
)
async def health(db: DatabaseDep) -> JSONResponse:
    try:
        async with db.engine.connect() as conn:
            state = await schema_state(conn)
    except Exception as exc:  # any failure means "not healthy"; the reason is enough
        return JSONResponse({"status": "error", "database": type(exc).__name__}, status_code=503)
    if state.problem is not None:
        return JSONResponse(
            {"status": "error", "database": "ok", "schema": state.status, "current": state.current, "head": state.head},
            status_code=503,
        )
    return JSONResponse({"status": "ok", "database": "ok"})
