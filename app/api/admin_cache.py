"""Admin API for the response cache: purge it, whole or for one bot."""

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel

from app.api.deps import ADMIN_ERRORS, DatabaseDep, ResponseCacheDep, require_admin
from app.services import response_cache

router = APIRouter(
    prefix="/admin", tags=["admin: cache"], dependencies=[Depends(require_admin)], responses=ADMIN_ERRORS
)


class CachePurged(BaseModel):
    """How many cached answers were deleted, and for which bot (null: every bot)."""

    deleted: int
    bot_id: str | None


@router.delete("/cache", response_model=CachePurged, summary="Purge cached answers (all, or one bot's)")
async def purge_cache(
    db: DatabaseDep,
    local: ResponseCacheDep,
    bot_id: Annotated[str | None, Query(min_length=1, max_length=100)] = None,
) -> CachePurged:
    deleted = await response_cache.purge(db, bot_id=bot_id, local=local)
    return CachePurged(deleted=deleted, bot_id=bot_id)
