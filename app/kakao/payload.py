"""The skill request Kakao POSTs to us (SkillPayload), parsed tolerantly."""

from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    GetJsonSchemaHandler,
    ValidationInfo,
    field_validator,
)
from pydantic.alias_generators import to_camel
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

MAX_UTTERANCE_CHARS = 2000
MAX_USER_ID_CHARS = 70
MAX_BOT_ID_CHARS = 100
MAX_BLOCK_NAME_CHARS = 200
# Validation context key: the bot id a request without `bot` belongs to (the server's DEFAULT_BOT_ID).
DEFAULT_BOT_CONTEXT = "default_bot_id"


def _none_as_empty(value: Any) -> Any:
    return {} if value is None else value


# Real payloads sometimes carry null where the docs show an object.
JsonObject = Annotated[dict[str, Any], BeforeValidator(_none_as_empty, json_schema_input_type=dict[str, Any] | None)]


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("NUL characters are not allowed")
    return value


class _NoNulInSchema:
    """States the NUL rule in the JSON schema as a pattern (`_no_nul` enforces it, with a clearer message)."""

    def __get_pydantic_json_schema__(self, schema: CoreSchema, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        json_schema = handler(schema)
        json_schema["pattern"] = "^[^\\u0000]*$"
        return json_schema


# A stored field: no NUL (PostgreSQL text cannot hold one; Kakao never sends one).
Text = Annotated[str, AfterValidator(_no_nul), _NoNulInSchema()]


def _any_length(schema: dict[str, Any]) -> None:
    schema.pop("maxLength", None)


class _KakaoModel(BaseModel):
    # Kakao adds undocumented keys over time; unknown keys must never fail a request (and the schema says so).
    model_config = ConfigDict(
        extra="ignore",
        populate_by_name=True,
        alias_generator=to_camel,
        json_schema_extra={"additionalProperties": True},
    )


class Bot(_KakaoModel):
    """The bot (tenant) the request is for."""

    id: Text = Field(min_length=1, max_length=MAX_BOT_ID_CHARS)
    name: str | None = None


class Block(_KakaoModel):
    """An Open Builder block reference."""

    id: str | None = None
    name: Text | None = Field(default=None, max_length=MAX_BLOCK_NAME_CHARS)


class Intent(_KakaoModel):
    """The matched intent (block)."""

    id: str | None = None
    name: Text | None = Field(default=None, max_length=MAX_BLOCK_NAME_CHARS)


class KakaoUser(_KakaoModel):
    """The user; `id` is the botUserKey, unique per bot."""

    id: Text = Field(min_length=1, max_length=MAX_USER_ID_CHARS)
    type: str | None = None
    properties: JsonObject = Field(default_factory=dict)


class UserRequest(_KakaoModel):
    """What the user said, and where to deliver a late answer (`callback_url`)."""

    # A longer utterance is answered with a Kakao reply asking to shorten it (a real user can type one), so to a
    # client any length is accepted.
    utterance: Text = Field(
        max_length=MAX_UTTERANCE_CHARS,
        json_schema_extra=_any_length,
        description=f"Over {MAX_UTTERANCE_CHARS} characters: a Kakao reply asks the user to shorten it",
    )
    user: KakaoUser
    callback_url: str | None = None
    block: Block | None = None
    lang: str | None = None
    timezone: str | None = None
    params: JsonObject = Field(default_factory=dict)


class Action(_KakaoModel):
    """The skill action; `params` values are strings (entities arrive JSON-encoded)."""

    id: str | None = None
    name: str | None = None
    params: JsonObject = Field(default_factory=dict)
    detail_params: JsonObject = Field(default_factory=dict)
    client_extra: dict[str, Any] | None = None


class FlowTrigger(_KakaoModel):
    """How the block was reached: typed text (`TEXT_INPUT`) or a button press."""

    type: str | None = None
    referrer_block: Block | None = None


class Flow(_KakaoModel):
    """Conversation flow information."""

    trigger: FlowTrigger | None = None
    last_block: Block | None = None


class SkillPayload(_KakaoModel):
    """One skill request: one user utterance. Read tolerantly, as real payloads vary: unknown keys are ignored and
    null stands for an absent object."""

    # Hand-written requests (seed 003's curl walk-through) leave `bot` out; the default comes from the context.
    bot: Bot = Field(
        default=None,
        validate_default=True,
        description="Kakao always sends it; when absent or null the server's DEFAULT_BOT_ID is used",
    )
    user_request: UserRequest
    # Seed 003's clients put the callback URL at the top level; `userRequest.callbackUrl` wins when both are set.
    callback_url: str | None = Field(default=None, description="Used only when userRequest.callbackUrl is absent")
    action: Action | None = None
    intent: Intent | None = None
    contexts: list[dict[str, Any]] | None = None
    flow: Flow | None = None

    @field_validator("bot", mode="before", json_schema_input_type=Bot | None)
    @classmethod
    def _default_bot(cls, value: Any, info: ValidationInfo) -> Any:
        default = (info.context or {}).get(DEFAULT_BOT_CONTEXT)
        if value is None and default:
            return {"id": default}
        return value

    @property
    def requested_callback_url(self) -> str | None:
        """The callback URL the request asks for (not yet vetted): the nested one, else the top-level one."""
        return self.user_request.callback_url or self.callback_url

    @property
    def bot_key(self) -> str:
        """Bot id without the trailing "!" that development channels add."""
        return self.bot.id.removesuffix("!")

    @property
    def user_key(self) -> str:
        """The botUserKey; unique only together with `bot_key`."""
        return self.user_request.user.id

    @property
    def is_friend(self) -> bool | None:
        """`userRequest.user.properties.isFriend`: whether the user has added the channel (None when unsaid)."""
        value = self.user_request.user.properties.get("isFriend")
        return value if isinstance(value, bool) else None

    @property
    def utterance(self) -> str:
        return self.user_request.utterance

    @property
    def block_name(self) -> str | None:
        """Name of the block that called the skill, if Kakao says."""
        if self.user_request.block and self.user_request.block.name:
            return self.user_request.block.name
        return self.intent.name if self.intent else None
