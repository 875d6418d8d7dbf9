"""Request bodies of the chat API, as OpenAI's API has them (fields this server does not use are ignored)."""

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

# The end user's id becomes part of `appuser.kakao_user_id` (70 characters with the key's prefix).
MAX_END_USER = 56
MAX_MESSAGES = 200
MAX_CONTENT = 32_000
MAX_PARTS = 100


class TextPart(BaseModel):
    type: Literal["text"]
    text: str = Field(max_length=MAX_CONTENT)


class ChatMessageIn(BaseModel):
    """One message; `developer` is OpenAI's newer name for `system`. Only text content is supported."""

    model_config = ConfigDict(extra="ignore")

    role: Literal["system", "developer", "user", "assistant"]
    content: Annotated[str, Field(max_length=MAX_CONTENT)] | Annotated[list[TextPart], Field(max_length=MAX_PARTS)]
    name: str | None = None

    @property
    def text(self) -> str:
        return self.content if isinstance(self.content, str) else "".join(part.text for part in self.content)


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="ignore")

    include_usage: bool = False


class ChatCompletionRequest(BaseModel):
    """`POST /v1/chat/completions`. `model` is the bot's id (see `GET /v1/models`)."""

    model_config = ConfigDict(extra="ignore")

    model: str = Field(min_length=1, max_length=100)
    messages: list[ChatMessageIn] = Field(min_length=1, max_length=MAX_MESSAGES)
    temperature: float | None = Field(default=None, ge=0, le=2)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    n: int | None = Field(default=None, ge=1, le=1, description="Only one choice is supported")
    stream: bool = False
    stream_options: StreamOptions | None = None
    user: str | None = Field(default=None, max_length=MAX_END_USER, description="The end user's id")


class SpeechRequest(BaseModel):
    """`POST /v1/audio/speech`: text to audio with the configured TTS model."""

    model_config = ConfigDict(extra="ignore")

    model: str = Field(min_length=1, max_length=100)
    input: str = Field(min_length=1, max_length=4096)
    voice: str = Field(min_length=1, max_length=50)
    response_format: Literal["mp3", "opus", "aac", "flac", "wav", "pcm"] = "mp3"
    speed: float | None = Field(default=None, ge=0.25, le=4.0)
