"""Speech for chat API keys: transcription and synthesis forwarded to the OPENAI_BASE_URL server."""

import httpx
import openai
from loguru import logger
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.config import Settings
from app.errors import ServiceUnavailable
from app.services import events
from app.services.chat.errors import ModelNotFound
from app.services.chat.keys import KeyRef
from app.services.chat.schemas import SpeechRequest
from app.services.llm import classify

SPEECH_USED = "speech_used"
MEDIA_TYPES = {
    "mp3": "audio/mpeg",
    "opus": "audio/ogg",
    "aac": "audio/aac",
    "flac": "audio/flac",
    "wav": "audio/wav",
    "pcm": "audio/pcm",
}


class SpeechService:
    """One `AsyncOpenAI` per process, built on first use; each call is recorded in `eventlog`."""

    def __init__(self, settings: Settings, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.settings = settings
        self.sessions = sessions
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
        await self._record(key, kind="transcription", model=upstream_model, size={"audio_bytes": len(data)})
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
        await self._record(key, kind="speech", model=upstream_model, size={"input_chars": len(request.input)})
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

    async def _record(self, key: KeyRef, *, kind: str, model: str, size: dict[str, int]) -> None:
        try:
            async with self.sessions.begin() as session:
                await events.record_event(
                    session, SPEECH_USED, bot_id=key.bot_id, detail={"api_key_id": key.id, "kind": kind,
                                                                      "model": model, **size}
                )
        except Exception:  # noqa: BLE001 - the caller has its audio; the record is secondary
            logger.exception("Could not record a speech call")
