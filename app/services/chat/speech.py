"""Speech for chat API keys: transcription and synthesis forwarded to the OPENAI_BASE_URL server."""

from typing import Any
from zoneinfo import ZoneInfo

import httpx
import openai
from loguru import logger
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import Settings
from app.errors import ServiceUnavailable
from app.models import utcnow
from app.services.chat.errors import ModelNotFound
from app.services.chat.keys import KeyRef
from app.services.chat.schemas import SpeechRequest
from app.services.llm import classify
from app.services.usage import Kind, ModelCall, local_day, record_calls
MEDIA_TYPES = {
    "mp3": "audio/mpeg",
    "opus": "audio/ogg",
    "aac": "audio/aac",
    "flac": "audio/flac",
    "wav": "audio/wav",
    "pcm": "audio/pcm",
}


class SpeechService:
    """One `AsyncOpenAI` per process, built on first use; each call is a usage row (kind `audio`, the key's).

    Audio is billed in its own units (seconds heard, characters spoken), so it is recorded but charged to no
    token budget.
    """

    def __init__(self, settings: Settings, engine: AsyncEngine) -> None:
        self.settings = settings
        self.engine = engine
        self._client: openai.AsyncOpenAI | None = None

    def _openai(self) -> openai.AsyncOpenAI:
        if not self.settings.openai_api_key:
            raise ServiceUnavailable("Speech needs OPENAI_API_KEY on this server.", code="speech_unavailable")
        if self._client is None:
            self._client = openai.AsyncOpenAI(
                api_key=self.settings.openai_api_key,
                base_url=self.settings.openai_base_url,
                max_retries=0,
                http_client=httpx.AsyncClient(timeout=httpx.Timeout(120.0, connect=5.0)),
            )
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.close()

    async def transcribe(
        self, key: KeyRef, *, model: str, filename: str, data: bytes, content_type: str | None,
        language: str | None, prompt: str | None,
    ) -> str:
        upstream_model = self._upstream_model(key, model, self.settings.openai_stt_model)
        client = self._openai()
        try:
            result = await client.audio.transcriptions.create(
                model=upstream_model,
                file=(filename, data, content_type or "application/octet-stream"),
                **({"language": language} if language else {}),
                **({"prompt": prompt} if prompt else {}),
            )
        except openai.APIError as exc:
            raise classify(exc) from exc
        await self._record(key, ModelCall(Kind.AUDIO, upstream_model, *_heard(result.usage)))
        return result.text

    async def speak(self, key: KeyRef, request: SpeechRequest) -> bytes:
        upstream_model = self._upstream_model(key, request.model, self.settings.openai_tts_model)
        client = self._openai()
        try:
            response = await client.audio.speech.create(
                model=upstream_model,
                input=request.input,
                voice=request.voice,
                response_format=request.response_format,
                **({"speed": request.speed} if request.speed is not None else {}),
            )
        except openai.APIError as exc:
            raise classify(exc) from exc
        await self._record(key, ModelCall(Kind.AUDIO, upstream_model, len(request.input), 0))
        return response.content

    @staticmethod
    def _upstream_model(key: KeyRef, model: str, configured: str) -> str:
        """The key's bot id or the configured model's own name both mean the configured model."""
        if model not in (key.bot_id, configured):
            raise ModelNotFound(
                f"The model '{model}' does not exist or this API key cannot use it; use '{key.bot_id}' or "
                f"'{configured}'."
            )
        return configured

    async def _record(self, key: KeyRef, call: ModelCall) -> None:
        now = utcnow()
        try:
            async with self.engine.begin() as conn:
                await record_calls(conn, [call], now=now, day=local_day(now, ZoneInfo(self.settings.usage_timezone)),
                                   bot_id=key.bot_id, api_key_id=str(key.id))
        except Exception as exc:  # noqa: BLE001 - the caller has its audio; the record is secondary
            logger.error("Usage of a speech call for key {} not recorded: {}", key.id, type(exc).__name__)


def _heard(usage: Any) -> tuple[int, int]:
    """A transcription's billed units: seconds of audio (whisper), or tokens (newer models); 0 when not reported."""
    if usage is None:
        return 0, 0
    if getattr(usage, "type", None) == "duration":
        return round(usage.seconds), 0
    return getattr(usage, "input_tokens", 0) or 0, getattr(usage, "output_tokens", 0) or 0
