"""Speech for chat API keys, OpenAI-compatible: transcription (multipart upload) and synthesis (audio back)."""

from typing import Annotated

from fastapi import APIRouter, Form, Response, UploadFile

from app.api.deps import ApiKeyDep, SpeechDep
from app.api.openai_errors import OPENAI_ERRORS, OpenAIRoute, openai_responses
from app.errors import PayloadTooLarge
from app.services.chat.schemas import SpeechRequest
from app.services.chat.speech import MEDIA_TYPES

router = APIRouter(
    prefix="/v1/audio", tags=["chat API (OpenAI-compatible)"], route_class=OpenAIRoute,
    responses={**OPENAI_ERRORS, **openai_responses(404)},
)


@router.post("/transcriptions", responses=openai_responses(413))
async def transcribe(
    key: ApiKeyDep,
    speech: SpeechDep,
    file: UploadFile,
    model: Annotated[str, Form(min_length=1, max_length=100)],
    language: Annotated[str | None, Form(max_length=10)] = None,
    prompt: Annotated[str | None, Form(max_length=2000)] = None,
) -> dict[str, str]:
    """Audio to text with the configured speech-to-text model: `{"text": ...}`."""
    limit = speech.settings.audio_max_upload_bytes
    data = await file.read(limit + 1)
    if len(data) > limit:
        raise PayloadTooLarge(f"The audio file is too large; the limit is {limit} bytes.")
    text = await speech.transcribe(
        key, model=model, filename=file.filename or "audio", data=data, content_type=file.content_type,
        language=language, prompt=prompt,
    )
    return {"text": text}


@router.post("/speech", response_class=Response, responses={200: {"content": {"audio/mpeg": {}}}})
async def synthesize(body: SpeechRequest, key: ApiKeyDep, speech: SpeechDep) -> Response:
    """Text to audio with the configured text-to-speech model."""
    audio = await speech.speak(key, body)
    return Response(audio, media_type=MEDIA_TYPES[body.response_format])
