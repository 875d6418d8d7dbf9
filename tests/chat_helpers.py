"""The chat API served for real: the app on uvicorn, an OpenAI-compatible fake upstream, keys made by the admin API."""

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import openai
from fastapi import FastAPI

from app.main import create_app
from tests.conftest import ADMIN_TOKEN, make_settings
from tests.fake_services import FakeServices, serve

BOT = "bot-chat"


@dataclass
class ChatEnv:
    app: FastAPI
    url: str
    fakes: FakeServices
    admin: httpx.AsyncClient
    clients: list[openai.AsyncOpenAI] = field(default_factory=list)

    async def new_key(self, **fields: Any) -> dict[str, Any]:
        response = await self.admin.post("/admin/api-keys", json={"name": "widget", "bot_id": BOT, **fields})
        assert response.status_code == 201, response.text
        return response.json()

    def client(self, key: str, prefix: str = "/v1") -> openai.AsyncOpenAI:
        # No retries: each error must surface as the exception class it maps to.
        client = openai.AsyncOpenAI(api_key=key, base_url=f"{self.url}{prefix}", max_retries=0, timeout=20)
        self.clients.append(client)
        return client


@asynccontextmanager
async def chat_env(
    database_url: str, tmp_path: Path, *, offline: bool = False, fakes: FakeServices | None = None, **overrides: Any
) -> AsyncIterator[ChatEnv]:
    """The app on a real uvicorn with the chat API's upstream (LLM and speech) a local fake."""
    fakes = fakes or FakeServices()
    async with AsyncExitStack() as stack:
        fake_url = await stack.enter_async_context(serve(fakes.app))
        upstream = {} if offline else {"openai_api_key": "sk-chat-test-0000", "openai_base_url": f"{fake_url}/v1"}
        settings = make_settings(
            database_url, chroma_path=str(tmp_path / "chroma"), embedding_backend="local", **upstream, **overrides
        )
        app = create_app(settings)
        url = await stack.enter_async_context(serve(app))
        admin = await stack.enter_async_context(
            httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=60)
        )
        env = ChatEnv(app=app, url=url, fakes=fakes, admin=admin)
        try:
            yield env
        finally:
            for client in env.clients:
                await client.close()
