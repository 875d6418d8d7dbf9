"""Skill response models (version "2.0") that refuse to exist when they break Kakao's limits.

Kakao answers an over-limit response with "Invalid json response from bot-skill." and the
single-use callback URL is gone, so every documented limit is checked at construction.
Serialise with `SkillResponse.to_dict()`.
"""

from typing import Annotated, Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

from app.kakao.limits import (
    MAX_BASIC_CARD_DESCRIPTION_CHARS,
    MAX_BASIC_CARD_TITLE_CHARS,
    MAX_CARD_BUTTONS,
    MAX_CAROUSEL_ITEMS,
    MAX_CAROUSEL_TEXT_CARD_CHARS,
    MAX_HORIZONTAL_BUTTONS,
    MAX_ITEM_CARD_ITEMS,
    MAX_LABEL_CHARS,
    MAX_LIST_CARD_ITEMS,
    MAX_OUTPUTS,
    MAX_QUICK_REPLIES,
    MAX_SIMPLE_TEXT_CHARS,
    MAX_TEXT_CARD_CHARS,
)

# Only the 14-character label limit is enforced: the 8-character one for side-by-side buttons is a
# display guideline that Kakao's own textCard example exceeds.
Label = Annotated[str, Field(min_length=1, max_length=MAX_LABEL_CHARS)]
ButtonLayout = Literal["vertical", "horizontal"]


class _ResponseModel(BaseModel):
    # Unknown keys are refused: a typo must fail here, not at Kakao.
    model_config = ConfigDict(extra="forbid", populate_by_name=True, alias_generator=to_camel)


class Link(_ResponseModel):
    """Link targets per platform."""

    web: str | None = None
    mobile: str | None = None
    pc: str | None = None


class Thumbnail(_ResponseModel):
    """An image on a card."""

    image_url: str
    link: Link | None = None
    fixed_ratio: bool | None = None
    width: int | None = None
    height: int | None = None


class Profile(_ResponseModel):
    """A small profile line (commerceCard uses `nickname`, itemCard `title`)."""

    title: str | None = None
    nickname: str | None = None
    image_url: str | None = None
    width: int | None = None
    height: int | None = None


class Button(_ResponseModel):
    """A card button; each action needs its own target field."""

    label: Label
    action: Literal["webLink", "message", "phone", "block", "share", "operator", "osLink", "addChannel"]
    web_link_url: str | None = None
    message_text: str | None = None
    phone_number: str | None = None
    block_id: str | None = None
    extra: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _action_has_target(self) -> Self:
        required = {"webLink": self.web_link_url, "phone": self.phone_number, "block": self.block_id}
        if self.action in required and not required[self.action]:
            raise ValueError(f"a {self.action} button needs its target field")
        if self.action == "message" and self.message_text is None:
            self.message_text = self.label
        return self


class QuickReply(_ResponseModel):
    """A quick reply chip under the bubbles."""

    label: Label
    action: Literal["message", "block"]
    message_text: str | None = None
    block_id: str | None = None
    extra: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _action_has_target(self) -> Self:
        if self.action == "block" and not self.block_id:
            raise ValueError("a block quick reply needs blockId")
        if self.action == "message" and not self.message_text:
            self.message_text = self.label
        return self


class SimpleText(_ResponseModel):
    """A plain text bubble (Markdown is not rendered)."""

    text: str = Field(min_length=1, max_length=MAX_SIMPLE_TEXT_CHARS)

    @model_validator(mode="after")
    def _not_blank(self) -> Self:
        if not self.text.strip():
            raise ValueError("simpleText.text must not be blank")
        return self


class SimpleImage(_ResponseModel):
    """A single image bubble."""

    image_url: str
    alt_text: str


class _Card(_ResponseModel):
    """A component with buttons: at most three, two when laid out side by side."""

    buttons: list[Button] | None = None
    button_layout: ButtonLayout | None = None

    @model_validator(mode="after")
    def _buttons_fit(self) -> Self:
        count = len(self.buttons or [])
        if count > MAX_CARD_BUTTONS:
            raise ValueError(f"a card holds at most {MAX_CARD_BUTTONS} buttons")
        if self.button_layout == "horizontal" and count > MAX_HORIZONTAL_BUTTONS:
            raise ValueError(f"a horizontal layout holds at most {MAX_HORIZONTAL_BUTTONS} buttons")
        return self


class BasicCard(_Card):
    """A card with a required thumbnail."""

    title: str | None = Field(default=None, max_length=MAX_BASIC_CARD_TITLE_CHARS)
    description: str | None = Field(default=None, max_length=MAX_BASIC_CARD_DESCRIPTION_CHARS)
    thumbnail: Thumbnail


class TextCard(_Card):
    """A text-only card; title and description share one length budget."""

    title: str | None = None
    description: str | None = None

    @property
    def text_length(self) -> int:
        return len(self.title or "") + len(self.description or "")

    @model_validator(mode="after")
    def _fits(self) -> Self:
        if not (self.title or self.description):
            raise ValueError("a textCard needs a title or a description")
        if self.text_length > MAX_TEXT_CARD_CHARS:
            raise ValueError(f"textCard title+description exceed {MAX_TEXT_CARD_CHARS} characters")
        return self


class ListCardHeader(_ResponseModel):
    """The title row of a listCard."""

    title: str


class ListItem(_ResponseModel):
    """One row of a listCard."""

    title: str
    description: str | None = None
    image_url: str | None = None
    link: Link | None = None
    action: Literal["block", "message"] | None = None
    block_id: str | None = None
    message_text: str | None = None
    extra: dict[str, Any] | None = None


class ListCard(_Card):
    """A header with up to five rows."""

    header: ListCardHeader
    items: list[ListItem] = Field(min_length=1, max_length=MAX_LIST_CARD_ITEMS)


class ItemHead(_ResponseModel):
    """The head line of an itemCard."""

    title: str


class ImageTitle(_ResponseModel):
    """The title block of an itemCard."""

    title: str
    description: str | None = None
    image_url: str | None = None


class ItemListEntry(_ResponseModel):
    """A title/description pair of an itemCard."""

    title: str
    description: str


class ItemCard(_Card):
    """A receipt-like card of title/description pairs."""

    thumbnail: Thumbnail | None = None
    head: ItemHead | None = None
    profile: Profile | None = None
    image_title: ImageTitle | None = None
    item_list: list[ItemListEntry] = Field(min_length=1, max_length=MAX_ITEM_CARD_ITEMS)
    item_list_alignment: Literal["left", "right"] | None = None
    item_list_summary: ItemListEntry | None = None
    title: str | None = None
    description: str | None = None


class CommerceCard(_Card):
    """A product card."""

    title: str | None = None
    description: str
    price: int
    currency: str | None = None
    discount: int | None = None
    discount_rate: int | None = None
    discounted_price: int | None = None
    thumbnails: list[Thumbnail] = Field(min_length=1, max_length=1)
    profile: Profile | None = None


class CarouselHeader(_ResponseModel):
    """The optional cover of a carousel."""

    title: str
    description: str
    thumbnail: Thumbnail


CarouselCard = BasicCard | TextCard | ListCard | ItemCard | CommerceCard
_CAROUSEL_CARD_TYPES: dict[str, type[BaseModel]] = {
    "basicCard": BasicCard,
    "textCard": TextCard,
    "listCard": ListCard,
    "itemCard": ItemCard,
    "commerceCard": CommerceCard,
}


class Carousel(_ResponseModel):
    """Up to ten cards of one kind, side by side."""

    type: Literal["basicCard", "textCard", "listCard", "itemCard", "commerceCard"]
    # Card shapes are disjoint (extra keys forbidden), so the union resolves unambiguously.
    items: list[CarouselCard] = Field(min_length=1, max_length=MAX_CAROUSEL_ITEMS)
    header: CarouselHeader | None = None

    @model_validator(mode="after")
    def _items_match_type(self) -> Self:
        card_type = _CAROUSEL_CARD_TYPES[self.type]
        if not all(type(item) is card_type for item in self.items):
            raise ValueError(f"carousel items must all be {self.type}")
        for item in self.items:
            if isinstance(item, TextCard) and item.text_length > MAX_CAROUSEL_TEXT_CARD_CHARS:
                raise ValueError(f"textCard in a carousel exceeds {MAX_CAROUSEL_TEXT_CARD_CHARS} characters")
        return self


Component = SimpleText | SimpleImage | BasicCard | TextCard | ListCard | ItemCard | CommerceCard | Carousel
_OUTPUT_FIELDS: dict[type[BaseModel], str] = {
    SimpleText: "simple_text",
    SimpleImage: "simple_image",
    BasicCard: "basic_card",
    TextCard: "text_card",
    ListCard: "list_card",
    ItemCard: "item_card",
    CommerceCard: "commerce_card",
    Carousel: "carousel",
}


class Output(_ResponseModel):
    """One bubble: exactly one component under its key, e.g. `{"simpleText": {...}}`."""

    simple_text: SimpleText | None = None
    simple_image: SimpleImage | None = None
    basic_card: BasicCard | None = None
    text_card: TextCard | None = None
    list_card: ListCard | None = None
    item_card: ItemCard | None = None
    commerce_card: CommerceCard | None = None
    carousel: Carousel | None = None

    @classmethod
    def of(cls, component: Component) -> "Output":
        """Wrap a component as a bubble."""
        return cls.model_validate({_OUTPUT_FIELDS[type(component)]: component})

    @property
    def component(self) -> Component:
        return next(slot for slot in self._slots() if slot is not None)

    def _slots(self) -> list[Component | None]:
        return [
            self.simple_text,
            self.simple_image,
            self.basic_card,
            self.text_card,
            self.list_card,
            self.item_card,
            self.commerce_card,
            self.carousel,
        ]

    @model_validator(mode="after")
    def _exactly_one(self) -> Self:
        if sum(slot is not None for slot in self._slots()) != 1:
            raise ValueError("an output holds exactly one component")
        return self


class SkillTemplate(_ResponseModel):
    """The bubbles and the quick replies under them."""

    outputs: list[Output] = Field(min_length=1, max_length=MAX_OUTPUTS)
    quick_replies: list[QuickReply] | None = Field(default=None, max_length=MAX_QUICK_REPLIES)


class ContextValue(_ResponseModel):
    """One output context to set (lifeSpan 0 deletes it)."""

    name: str
    life_span: int = Field(ge=0)
    ttl: int | None = Field(default=None, ge=0)
    params: dict[str, str] | None = None


class ContextControl(_ResponseModel):
    """Output contexts."""

    values: list[ContextValue]


class SkillResponse(_ResponseModel):
    """A skill response, for the immediate reply or the callback POST."""

    version: Literal["2.0"] = "2.0"
    use_callback: bool | None = None
    template: SkillTemplate | None = None
    context: ContextControl | None = None
    data: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """The JSON body Kakao expects: camelCase keys, no nulls."""
        return self.model_dump(by_alias=True, exclude_none=True)
