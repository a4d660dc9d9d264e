"""Request bodies of the simulated Zixflow APIs, validated as strictly as the real ones.

The shapes are described where they are served: :mod:`.zixflow`. MessageFlow's and the JSON
gateway's bodies live in :mod:`.messageflow` and :mod:`.gateway`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    model_validator,
)

Recipient = Annotated[str, StringConstraints(pattern=r"^\d{8,15}$")]
NonEmpty = Annotated[str, StringConstraints(min_length=1, pattern=r"\S")]
Url = Annotated[str, StringConstraints(pattern=r"^https?://\S+$")]
Email = Annotated[str, StringConstraints(max_length=254, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")]


Text20 = Annotated[str, StringConstraints(min_length=1, max_length=20, pattern=r"\S")]
Text60 = Annotated[str, StringConstraints(min_length=1, max_length=60, pattern=r"\S")]
Text256 = Annotated[str, StringConstraints(min_length=1, max_length=256, pattern=r"\S")]
Text1024 = Annotated[str, StringConstraints(min_length=1, max_length=1024, pattern=r"\S")]
Text4096 = Annotated[str, StringConstraints(min_length=1, max_length=4096, pattern=r"\S")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class SmsSend(_Strict):
    """Zixflow ``POST /api/ingest/sms/v1/message/send`` (seed 001)."""

    recipient: Recipient
    message: NonEmpty
    sender_id: NonEmpty
    route: Literal["promotional", "transactional", "otp"]
    is_flash: bool = False
    dlt_entity_id: str | None = None
    dlt_template_id: str | None = None
    post_back_url: Url | None = None
    post_back_data: str | None = None


class _WhatsAppIngest(_Strict):
    recipient: Recipient
    phone_id: NonEmpty
    post_back_url: Url | None = None
    post_back_data: str | None = None


class WhatsAppTemplate(_WhatsAppIngest):
    """Zixflow ingest WhatsApp template message."""

    template_name: NonEmpty
    variables: dict[str, Any] | list[Any] | None = None
    language: str | None = None


class WhatsAppText(_WhatsAppIngest):
    """Free-text session message (our own interpretation of "custom")."""

    text: Text4096
    preview_url: bool = False


class Header(_Strict):
    """Interactive header: ``type`` names which of the other fields is required."""

    type: Literal["text", "image", "video", "document"]
    text: Text60 | None = None
    image: Url | None = None
    video: Url | None = None
    document: Url | None = None

    @model_validator(mode="after")
    def _needs_typed_field(self) -> Header:
        if getattr(self, self.type) is None:
            raise ValueError(f"header.{self.type} is required when header.type is {self.type}")
        return self


class Body(_Strict):
    text: Text1024


class Footer(_Strict):
    text: Text60


class Reply(_Strict):
    id: Text256
    title: Text20


class Button(_Strict):
    type: Literal["reply"]
    reply: Reply


class Action(_Strict):
    buttons: Annotated[list[Button], Field(min_length=1, max_length=3)]


class Interactive(_Strict):
    """Reply-buttons interactive object (seed 004)."""

    type: Literal["button"]
    header: Header | None = None
    body: Body
    footer: Footer | None = None
    action: Action


class WhatsAppButtons(_WhatsAppIngest):
    """Zixflow ingest WhatsApp interactive reply-buttons message."""

    interactive: Interactive


class CampaignSend(_Strict):
    """Zixflow ``POST /api/v1/campaign/whatsapp/message/send`` (seed 004, no callback URL)."""

    to: Recipient
    phoneId: NonEmpty
    type: Literal["interactive"]
    interactive: Interactive
    source: str = "API"
    linkWithRecord: bool = False
    submissionStatus: bool = False


class FieldError(ValueError):
    """A request field is wrong in a way a pydantic model does not express."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class _RcsSend(_Strict):
    recipient: Recipient
    bot_id: NonEmpty
    post_back_url: Url | None = None
    post_back_data: str | None = None


class RcsText(_RcsSend):
    """Zixflow RCS text message."""

    type: Literal["text"]
    text: Text4096


class RcsMedia(_RcsSend):
    """Zixflow RCS image, video or audio message."""

    type: Literal["image", "video", "audio"]
    media_url: Url
    caption: Text1024 | None = None


class RcsDocument(_RcsSend):
    """Zixflow RCS document message."""

    type: Literal["document"]
    media_url: Url
    caption: Text1024 | None = None
    file_name: Text256 | None = None


class RcsTemplate(_RcsSend):
    """Zixflow RCS template message."""

    type: Literal["template"]
    template_name: NonEmpty
    variables: dict[str, Any] | None = None


class _RcsType(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)

    type: Literal["text", "image", "video", "audio", "document", "template"]


RCS_MODELS: dict[str, type[_RcsSend]] = {
    "text": RcsText,
    "image": RcsMedia,
    "video": RcsMedia,
    "audio": RcsMedia,
    "document": RcsDocument,
    "template": RcsTemplate,
}


def parse_rcs(body: Any) -> BaseModel:
    """Validate a Zixflow RCS send: ``type`` picks which fields are required and allowed."""
    kind = _RcsType.model_validate(body).type
    return RCS_MODELS[kind].model_validate(body)


class EmailSend(_Strict):
    """Zixflow ``POST /api/ingest/email/v1/send``; ``from`` is a Python keyword, hence the alias."""

    to: Email
    from_: Email = Field(alias="from")
    subject: Annotated[str, StringConstraints(min_length=1, max_length=998, pattern=r"\S")]
    text: NonEmpty | None = None
    html: NonEmpty | None = None
    reply_to: Email | None = None
    post_back_url: Url | None = None
    post_back_data: str | None = None


def parse_email(body: Any) -> BaseModel:
    """Validate a Zixflow email send: at least one of ``text`` and ``html``."""
    payload = EmailSend.model_validate(body)
    if payload.text is None and payload.html is None:
        raise FieldError("text", "text or html is required")
    return payload


def first_error(exc: ValidationError) -> str:
    """Short message naming the first offending field, e.g. ``route: Input should be ...``."""
    err = exc.errors()[0]
    loc = ".".join(str(part) for part in err["loc"]) or "body"
    return f"{loc}: {err['msg']}"
