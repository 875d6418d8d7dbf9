"""Shared typed dependencies of the API routers."""

import hmac
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status

from app.config import Settings


async def require_admin(request: Request) -> None:
    """Allow the request only with `Authorization: Bearer <ADMIN_TOKEN>`."""
    settings: Settings = request.app.state.settings
    if not settings.admin_token:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            "관리자 API가 꺼져 있어요. 서버에 ADMIN_TOKEN을 설정하면 사용할 수 있어요.",
        )
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    # Compare bytes: compare_digest rejects non-ASCII str, and a client may send anything.
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        token.strip().encode(), settings.admin_token.encode()
    ):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "관리자 토큰이 없거나 올바르지 않아요.",
            headers={"WWW-Authenticate": "Bearer"},
        )


AdminDep = Annotated[None, Depends(require_admin)]
