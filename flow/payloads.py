"""Each channel's payloads (SPEC section 2), one model per (channel, messageType).

A new message type is one payload model and one :data:`PAYLOADS` entry; nothing else changes.
Every payload but email goes to a phone number (:class:`PhonePayload`, ``recipient``); email
goes to ``to``. :attr:`Payload.address` is either. The email sender is ``from`` in JSON
(``from_`` in Python). Email addresses are checked for syntax only: no DNS lookups.

Channels and their message types:

- ``sms`` (``""``) and ``whatsapp`` (``template``, ``custom``, ``interactive``): seeds 001, 004;
- ``rcs`` (``text``, ``image``, ``video``, ``audio``, ``document``, ``template``) and
  ``email`` (``""``): seed 000;
- ``voice``, ``telegram`` (OTP codes only) and ``viber``, all ``""``: seed 003.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import Annotated, Literal, get_args

from pydantic import (
    BaseModel,
    ConfigDict,
    EmailStr,
    Field,
    StringConstraints,
    model_validator,
)

from otpflow.flow.fields import (
    CODE_PATTERN,
    LANGUAGE_PATTERN,
    NO_COUNTRY,
    ONE_LINE_PATTERN,
    CallerUrl,
    PhoneNumber,
    PostBackData,
    ShortText,
    Url,
    email_limit_key,
    phone_facts,
    phone_limit_key,
)


class Payload(BaseModel):
    """Base of every step payload: strict types, unknown fields are an error."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    @property
    @abstractmethod
    def address(self) -> str:
        """Where the message goes: a phone number, or an email address."""

    @property
    @abstractmethod
    def limit_key(self) -> str:
        """The recipient as per-recipient limits count it: one person, however written."""

    @property
    def country(self) -> str:
        """The recipient's country (ISO 3166 alpha-2) as routing counts it; ``ZZ`` if none."""
        return NO_COUNTRY

    def text_fields(self) -> list[str]:
        """Message text in this payload, so tests and log checks know what must never leak."""
        return []


class PhonePayload(Payload):
    """A payload sent to a phone number (every channel but email)."""

    recipient: PhoneNumber

    @property
    def address(self) -> str:
        return self.recipient

    @property
    def limit_key(self) -> str:
        return phone_limit_key(self.recipient)

    @property
    def country(self) -> str:
        return phone_facts(self.recipient).region


class SmsPayload(PhonePayload):
    """Zixflow SMS (seed 001)."""

    message: Annotated[str, StringConstraints(min_length=1, max_length=1600)]
    sender_id: Annotated[str, StringConstraints(min_length=1, max_length=20)]
    route: Literal["promotional", "transactional", "otp"]
    is_flash: bool = False
    dlt_entity_id: Annotated[str, StringConstraints(min_length=1, max_length=64)] | None = None
    dlt_template_id: Annotated[str, StringConstraints(min_length=1, max_length=64)] | None = None
    post_back_url: CallerUrl | None = None
    post_back_data: PostBackData | None = None

    def text_fields(self) -> list[str]:
        return [self.message]


class WhatsAppBase(PhonePayload):
    phone_id: ShortText
    post_back_url: CallerUrl | None = None
    post_back_data: PostBackData | None = None


class WhatsAppTemplatePayload(WhatsAppBase):
    """An approved template (Zixflow ingest ``template/send``)."""

    template_name: Annotated[str, StringConstraints(min_length=1, max_length=512)]
    language: Annotated[str, StringConstraints(min_length=2, max_length=15)] = "en"
    variables: dict[str, Annotated[str, StringConstraints(max_length=1024)]] | None = None

    def text_fields(self) -> list[str]:
        return list((self.variables or {}).values())


class WhatsAppCustomPayload(WhatsAppBase):
    """A free-text session message."""

    text: Annotated[str, StringConstraints(min_length=1, max_length=4096)]
    preview_url: bool = False

    def text_fields(self) -> list[str]:
        return [self.text]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class InteractiveText(_Strict):
    text: Annotated[str, StringConstraints(min_length=1, max_length=1024)]


class InteractiveFooter(_Strict):
    text: Annotated[str, StringConstraints(min_length=1, max_length=60)]


class InteractiveHeader(_Strict):
    """Seed 004: text (<= 60 characters), or an http(s) image, video or document."""

    type: Literal["text", "image", "video", "document"]
    text: Annotated[str, StringConstraints(min_length=1, max_length=60)] | None = None
    image: Url | None = None
    video: Url | None = None
    document: Url | None = None

    @model_validator(mode="after")
    def _one_content_field(self) -> InteractiveHeader:
        given = {name for name in ("text", "image", "video", "document") if getattr(self, name)}
        if given != {self.type}:
            raise ValueError(f"a header of type {self.type!r} needs exactly that one field")
        return self


class ReplyButton(_Strict):
    id: Annotated[str, StringConstraints(min_length=1, max_length=256)]
    title: Annotated[str, StringConstraints(min_length=1, max_length=20)]


class Button(_Strict):
    type: Literal["reply"]
    reply: ReplyButton


class InteractiveAction(_Strict):
    buttons: Annotated[list[Button], Field(min_length=1, max_length=3)]


class Interactive(_Strict):
    type: Literal["button"] = "button"
    header: InteractiveHeader | None = None
    body: InteractiveText
    footer: InteractiveFooter | None = None
    action: InteractiveAction


def _interactive_texts(interactive: Interactive) -> list[str]:
    texts = [interactive.body.text]
    if interactive.header and interactive.header.text:
        texts.append(interactive.header.text)
    if interactive.footer:
        texts.append(interactive.footer.text)
    return texts


class WhatsAppInteractivePayload(WhatsAppBase):
    """Reply buttons (seed 004's interactive object, sent through the Zixflow ingest API)."""

    interactive: Interactive

    def text_fields(self) -> list[str]:
        return _interactive_texts(self.interactive)


class WhatsAppCampaignInteractivePayload(Payload):
    """Reply buttons in seed 004's own body (Zixflow's campaign API), field names as the seed
    spells them: ``to, phoneId, type, interactive, source, linkWithRecord, submissionStatus``.

    That API takes no callback URL: no delivery report comes, so a step sent this way ends by
    its timeout (SPEC). The ingest shape (:class:`WhatsAppInteractivePayload`) reports.
    """

    to: PhoneNumber
    phone_id: ShortText = Field(alias="phoneId")
    type: Literal["interactive"] = "interactive"
    interactive: Interactive
    source: Annotated[str, StringConstraints(min_length=1, max_length=64)] = "API"
    link_with_record: bool = Field(default=False, alias="linkWithRecord")
    submission_status: bool = Field(default=False, alias="submissionStatus")

    @property
    def address(self) -> str:
        return self.to

    @property
    def limit_key(self) -> str:
        return phone_limit_key(self.to)

    @property
    def country(self) -> str:
        return phone_facts(self.to).region

    def text_fields(self) -> list[str]:
        return _interactive_texts(self.interactive)


class RcsBase(PhonePayload):
    """Zixflow RCS (seed 000): fields every RCS message type shares; ``bot_id`` is the agent."""

    bot_id: Annotated[str, StringConstraints(min_length=1, max_length=128)]
    post_back_url: CallerUrl | None = None
    post_back_data: PostBackData | None = None


class RcsTextPayload(RcsBase):
    """RCS text message (seed 000, messageType ``text``)."""

    text: Annotated[str, StringConstraints(min_length=1, max_length=3072)]

    def text_fields(self) -> list[str]:
        return [self.text]


class RcsMediaPayload(RcsBase):
    """RCS media message: an http(s) file and an optional caption (seed 000)."""

    media_url: Url
    caption: Annotated[str, StringConstraints(min_length=1, max_length=2000)] | None = None

    def text_fields(self) -> list[str]:
        return [self.caption] if self.caption else []


class RcsImagePayload(RcsMediaPayload):
    """RCS image message (seed 000, messageType ``image``)."""


class RcsVideoPayload(RcsMediaPayload):
    """RCS video message (seed 000, messageType ``video``)."""


class RcsAudioPayload(RcsMediaPayload):
    """RCS audio message (seed 000, messageType ``audio``)."""


class RcsDocumentPayload(RcsMediaPayload):
    """RCS document message (seed 000, messageType ``document``)."""

    file_name: Annotated[str, StringConstraints(min_length=1, max_length=255)] | None = None

    def text_fields(self) -> list[str]:
        return super().text_fields() + ([self.file_name] if self.file_name else [])


class RcsTemplatePayload(RcsBase):
    """An approved RCS template (seed 000, messageType ``template``)."""

    template_name: Annotated[str, StringConstraints(min_length=1, max_length=512)]
    variables: dict[str, Annotated[str, StringConstraints(max_length=1024)]] | None = None

    def text_fields(self) -> list[str]:
        return list((self.variables or {}).values())


class EmailPayload(Payload):
    """Zixflow email (seed 000). ``from`` in JSON; text, html or both.

    Addresses are checked by syntax only (pydantic's ``EmailStr`` never asks DNS).
    """

    to: EmailStr
    from_: EmailStr = Field(alias="from")
    # One header line (RFC 5322 limit), so no CR/LF to inject headers with.
    subject: Annotated[
        str, StringConstraints(min_length=1, max_length=998, pattern=ONE_LINE_PATTERN)
    ]
    text: Annotated[str, StringConstraints(min_length=1, max_length=100_000)] | None = None
    html: Annotated[str, StringConstraints(min_length=1, max_length=200_000)] | None = None
    reply_to: EmailStr | None = None
    post_back_url: CallerUrl | None = None
    post_back_data: PostBackData | None = None

    @property
    def address(self) -> str:
        return self.to

    @property
    def limit_key(self) -> str:
        return email_limit_key(self.to)

    @model_validator(mode="after")
    def _text_or_html(self) -> EmailPayload:
        if self.text is None and self.html is None:
            raise ValueError("an email needs text, html or both")
        return self

    def text_fields(self) -> list[str]:
        return [t for t in (self.subject, self.text, self.html) if t]


class VoiceSettings(_Strict):
    """The voice a text-to-speech call speaks with (seed 003): ``female``, ``en-GB``, a name."""

    gender: Literal["male", "female"]
    language: Annotated[str, StringConstraints(pattern=LANGUAGE_PATTERN)]
    name: Annotated[str, StringConstraints(min_length=1, max_length=64)]


class VoicePayload(PhonePayload):
    """A text-to-speech call (seed 003; recommended for OTPs only)."""

    message: Annotated[str, StringConstraints(min_length=1, max_length=1000)]
    voice: VoiceSettings | None = None
    dtmf: bool = False

    def text_fields(self) -> list[str]:
        return [self.message]


class TelegramPayload(PhonePayload):
    """A Telegram OTP (seed 003: Telegram carries one-time codes only, so just the digits)."""

    # the digits, or the placeholder for a code OTPflow makes
    code: Annotated[str, StringConstraints(pattern=CODE_PATTERN)]

    def text_fields(self) -> list[str]:
        return [self.code]


class ViberPayload(PhonePayload):
    """A Viber text message (seed 003); ``signature`` is the sender name."""

    type: Literal["text"]
    signature: Annotated[str, StringConstraints(min_length=1, max_length=32)]
    message: Annotated[str, StringConstraints(min_length=1, max_length=1000)]
    post_back_data: PostBackData | None = None

    def text_fields(self) -> list[str]:
        return [self.message]


# (channel, messageType) -> payload model. The only place a channel is registered.
PAYLOADS: dict[tuple[str, str], type[Payload]] = {
    ("sms", ""): SmsPayload,
    ("whatsapp", "template"): WhatsAppTemplatePayload,
    ("whatsapp", "custom"): WhatsAppCustomPayload,
    ("whatsapp", "interactive"): WhatsAppInteractivePayload,
    ("rcs", "text"): RcsTextPayload,
    ("rcs", "image"): RcsImagePayload,
    ("rcs", "video"): RcsVideoPayload,
    ("rcs", "audio"): RcsAudioPayload,
    ("rcs", "document"): RcsDocumentPayload,
    ("rcs", "template"): RcsTemplatePayload,
    ("email", ""): EmailPayload,
    ("voice", ""): VoicePayload,
    ("telegram", ""): TelegramPayload,
    ("viber", ""): ViberPayload,
}
# A message type whose provider API takes a second body shape: (channel, messageType) -> the
# other payload models, picked by the fields the data holds (see _shape_of).
OTHER_SHAPES: dict[tuple[str, str], tuple[type[Payload], ...]] = {
    ("whatsapp", "interactive"): (WhatsAppCampaignInteractivePayload,),
}
Channel = Literal["sms", "whatsapp", "rcs", "email", "voice", "telegram", "viber"]
CHANNELS: tuple[str, ...] = get_args(Channel)


def message_types(channel: str) -> list[str]:
    return [message_type for (ch, message_type) in PAYLOADS if ch == channel]
