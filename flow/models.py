"""The flow request (seed 000) and the per-channel payloads it carries.

A request is checked in two passes so that every bad field is named by its path at once:
the envelope (``messages``, ``channel``, ``timeout``, ...) and then each step's ``data`` against
the payload model registered for its (channel, messageType). A new message type is one payload
model and one :data:`PAYLOADS` entry; nothing else changes.

Channels and their message types (SPEC section 2):

- ``sms`` (``""``) and ``whatsapp`` (``template``, ``custom``, ``interactive``): seeds 001, 004;
- ``rcs`` (``text``, ``image``, ``video``, ``audio``, ``document``, ``template``) and
  ``email`` (``""``): seed 000;
- ``voice``, ``telegram`` (OTP codes only) and ``viber``, all ``""``: seed 003.

Every payload but email goes to a phone number (:class:`PhonePayload`, ``recipient``); email
goes to ``to``. :attr:`Payload.address` is either. The email sender is ``from`` in JSON (``from_``
in Python); :meth:`FlowRequest.to_json_dict` writes aliases back, so a request round-trips.
Email addresses are checked for syntax only: no DNS lookups.

Error paths are dotted and zero-based, as the API returns them: ``messages.1.data.recipient``.
"""

from __future__ import annotations

import json
from abc import abstractmethod
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal, get_args

import phonenumbers
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    EmailStr,
    Field,
    HttpUrl,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    model_validator,
)
from pydantic_core import PydanticCustomError

from otpflow.flow.destinations import DestinationRefused, refuse_obviously_private

MAX_STEPS = 10
MAX_TIMEOUT_SECONDS = 300


_HTTP_URL = TypeAdapter(HttpUrl)


def _http_url(value: str) -> str:
    return str(_HTTP_URL.validate_python(value))


PHONE_PATTERN = r"^[1-9][0-9]{7,14}$"
# One line of text: no control character (C0, DEL, C1: CR, LF, \x0b, \x85, ...) and no
# Unicode line or paragraph separator, any of which a mail library may take for a line break.
ONE_LINE_PATTERN = r"^[^\x00-\x1f\x7f-\x9f\u2028\u2029]*$"
LANGUAGE_PATTERN = r"^[a-z]{2,3}-[A-Z]{2}$"
CODE_PATTERN = r"^([0-9]{4,10}|\{\{code\}\})$"
# What a value breaking a pattern is told, in words (never the regular expression itself).
PATTERN_MESSAGES = {
    PHONE_PATTERN: "must be digits only, with the country code and no + or spaces "
    "(8 to 15 digits, e.g. 919876543210)",
    ONE_LINE_PATTERN: "must be one line (no line breaks or control characters)",
    LANGUAGE_PATTERN: "must be a language and region like en-GB",
    CODE_PATTERN: "must be 4 to 10 digits, or {{code}} for a code OTPflow makes",
}


def _valid_phone_number(value: str) -> str:
    # the digits must make a real number once read with their country code: "9800000001" is
    # not India's 98000 00001 without its 91, and would dodge that number's limits
    try:
        number = phonenumbers.parse("+" + value)
    except phonenumbers.NumberParseException:
        number = None
    if number is None or not phonenumbers.is_valid_number(number):
        raise PydanticCustomError(
            "phone_number",
            "is not a valid phone number: the country code, then the number "
            "(digits only, e.g. 919876543210)",
        )
    return value


PhoneNumber = Annotated[
    str,
    StringConstraints(pattern=PHONE_PATTERN),
    AfterValidator(_valid_phone_number),
    Field(description="Country code and number, digits only, no '+' (seed 001): 919876543210."),
]


def phone_limit_key(recipient: str) -> str:
    """A valid recipient number in E.164 (``+919876543210``), as abuse limits count it."""
    number = phonenumbers.parse("+" + recipient)
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def email_limit_key(address: str) -> str:
    """An email address as abuse limits count it: case folded, and without a ``+tag`` in the
    local part, so ``Victim+1@Example.org`` counts as ``victim@example.org``. For the limits
    only: the message still goes to the address as given."""
    local, _, domain = address.rpartition("@")
    return f"{local.split('+', 1)[0]}@{domain}".casefold()


Url = Annotated[str, StringConstraints(max_length=2048), AfterValidator(_http_url)]

# FlowRequest.parse's validation context: may a caller's URL name a private address?
ALLOW_PRIVATE_DESTINATIONS = "allow_private_destinations"


def _caller_destination(value: str, info: ValidationInfo) -> str:
    # OTPflow itself calls these URLs: refuse an obviously private host at intake (400), not
    # only at delivery (otpflow.flow.destinations), unless the intake allows private ones
    if (info.context or {}).get(ALLOW_PRIVATE_DESTINATIONS, True):
        return value
    try:
        return refuse_obviously_private(value)
    except DestinationRefused as exc:
        raise PydanticCustomError("private_destination", str(exc)) from None


# a URL OTPflow posts to (webhookurl, post_back_url), as opposed to one a provider fetches
CallerUrl = Annotated[Url, AfterValidator(_caller_destination)]
ShortText = Annotated[str, StringConstraints(min_length=1, max_length=256)]
PostBackData = Annotated[str, StringConstraints(max_length=256)]


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


class StepEnvelope(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    channel: Channel
    timeout: Annotated[int, Field(strict=True, ge=0, le=MAX_TIMEOUT_SECONDS)]
    messageType: Annotated[str, StringConstraints(max_length=32)] = ""
    data: dict[str, Any]


CODE_PLACEHOLDER = "{{code}}"
# the longest code OTPflow makes: a request whose otp length is unknown is checked with it
MAX_CODE_LENGTH = 10


class OtpOptions(BaseModel):
    """Ask OTPflow to make the code: ``{{code}}`` in every step's text is replaced by it."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    length: Annotated[int, Field(ge=4, le=MAX_CODE_LENGTH)] = 6
    ttl: Annotated[int, Field(ge=30, le=3600, description="seconds the code can be used")] = 300
    max_attempts: Annotated[int, Field(ge=1, le=10)] = 5


WebhookEvent = Literal["channel_switch", "terminal"]


class FlowEnvelope(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    messages: Annotated[list[StepEnvelope], Field(min_length=1, max_length=MAX_STEPS)]
    webhookurl: CallerUrl | None = None
    callbackData: Annotated[str, StringConstraints(max_length=1024)] | None = None
    otp: OtpOptions | None = None
    webhookEvents: list[WebhookEvent] = ["channel_switch"]
    allowConcurrent: Annotated[bool, Field(strict=True)] = False


@dataclass(frozen=True)
class Step:
    channel: str
    timeout: int
    message_type: str
    data: Payload

    def with_code(self, code: str) -> Step:
        """This step with the generated code in place of every ``{{code}}``.

        Raises :class:`UnrenderableStep` (naming fields, never their values) if the result
        breaks the payload's rules; intake checks the longest code, so this is a last guard.
        """
        raw = json.dumps(self.data.model_dump(mode="json", exclude_none=True, by_alias=True))
        if CODE_PLACEHOLDER not in raw:
            return self
        try:
            data = type(self.data).model_validate(json.loads(raw.replace(CODE_PLACEHOLDER, code)))
        except ValidationError as exc:
            # the error's text and input hold the code: only paths and messages go on
            fields = [(error.path, error.message) for error in _field_errors(exc)]
            raise UnrenderableStep(fields) from None
        return Step(self.channel, self.timeout, self.message_type, data)


class UnrenderableStep(ValueError):
    """A step is not valid with its code filled in. ``fields`` are (path, message) pairs;
    the text says which fields, and holds no value of them."""

    def __init__(self, fields: list[tuple[str, str]]) -> None:
        self.fields = fields
        names = ", ".join(path for path, _ in fields) or "data"
        super().__init__(f"the step is not valid with its code filled in ({names})")


@dataclass(frozen=True)
class FieldError:
    path: str
    message: str


class InvalidRequest(ValueError):
    """The request breaks the contract; ``errors`` names every bad field by its path."""

    def __init__(self, errors: list[FieldError]) -> None:
        self.errors = errors
        super().__init__("; ".join(f"{e.path}: {e.message}" for e in errors))


@dataclass(frozen=True)
class FlowRequest:
    """A validated flow: the only shape the store and the worker ever see."""

    steps: tuple[Step, ...]
    webhook_url: str | None = None
    callback_data: str | None = None
    otp: OtpOptions | None = None
    webhook_events: tuple[str, ...] = ("channel_switch",)
    allow_concurrent: bool = False

    @classmethod
    def parse(cls, raw: Any, *, allow_private_destinations: bool = True) -> FlowRequest:
        """Validate a seed-000 request (a dict as decoded from JSON); raise InvalidRequest.

        An intake passes ``allow_private_destinations=settings.allow_private_webhooks``; a
        request read back from the store was checked when it came in."""
        context = {ALLOW_PRIVATE_DESTINATIONS: allow_private_destinations}
        errors: list[FieldError] = []
        envelope: FlowEnvelope | None = None
        try:
            envelope = FlowEnvelope.model_validate(raw, context=context)
        except ValidationError as exc:
            errors.extend(_field_errors(exc))
        messages = raw.get("messages") if isinstance(raw, Mapping) else None
        code_length = _code_length(raw, envelope)
        steps: list[Step] = []
        if isinstance(messages, list):
            for index, message in enumerate(messages[:MAX_STEPS]):
                step = _parse_step(index, message, errors, code_length, context)
                if step is not None:
                    steps.append(step)
        if envelope is not None and envelope.otp is not None:
            errors.extend(
                FieldError(
                    f"messages.{index}.data", f"must contain {CODE_PLACEHOLDER} when otp is set"
                )
                for index, step in enumerate(steps)
                if CODE_PLACEHOLDER not in json.dumps(step.data.model_dump(mode="json"))
            )
        elif envelope is not None:
            # without an otp block there is no code to put there: it would go out literally
            errors.extend(
                FieldError(
                    f"messages.{index}.data.{path}",
                    f"contains {CODE_PLACEHOLDER} but the request has no otp block "
                    "to make the code",
                )
                for index, step in enumerate(steps)
                for path in _placeholder_paths(
                    step.data.model_dump(mode="json", exclude_none=True, by_alias=True)
                )
            )
        if errors or envelope is None:
            raise InvalidRequest(_dedupe(errors))
        return cls(
            steps=tuple(steps),
            webhook_url=envelope.webhookurl,
            callback_data=envelope.callbackData,
            otp=envelope.otp,
            webhook_events=tuple(envelope.webhookEvents),
            allow_concurrent=envelope.allowConcurrent,
        )

    def to_json_dict(self) -> dict[str, Any]:
        """The seed-000 shape again; ``FlowRequest.parse(r.to_json_dict()) == r``."""
        return {
            "messages": [
                {
                    "channel": step.channel,
                    "timeout": step.timeout,
                    "messageType": step.message_type,
                    "data": step.data.model_dump(mode="json", exclude_none=True, by_alias=True),
                }
                for step in self.steps
            ],
            "webhookurl": self.webhook_url,
            "callbackData": self.callback_data,
            "otp": self.otp.model_dump() if self.otp else None,
            "webhookEvents": list(self.webhook_events),
            "allowConcurrent": self.allow_concurrent,
        }

    def addresses(self) -> set[str]:
        """Every phone number and email address the flow sends to."""
        return {step.data.address for step in self.steps}

    def messages_per_recipient(self) -> dict[str, int]:
        """How many messages the flow may send each recipient (one per step to it), by the
        recipient's :attr:`Payload.limit_key`."""
        return dict(Counter(step.data.limit_key for step in self.steps))


def _code_length(raw: Any, envelope: FlowEnvelope | None) -> int | None:
    """How long the code put into the steps will be: None if the request makes none, the
    longest there is if its otp block is there but cannot be read."""
    if envelope is not None:
        return envelope.otp.length if envelope.otp is not None else None
    has_otp = isinstance(raw, Mapping) and raw.get("otp") is not None
    return MAX_CODE_LENGTH if has_otp else None


def _parse_step(
    index: int,
    message: Any,
    errors: list[FieldError],
    code_length: int | None,
    context: dict[str, Any] | None = None,
) -> Step | None:
    if not isinstance(message, Mapping):
        return None  # the envelope pass already reported it
    channel, message_type = message.get("channel"), message.get("messageType", "")
    data = message.get("data")
    if channel not in CHANNELS or not isinstance(message_type, str):
        return None
    model = PAYLOADS.get((channel, message_type))
    if model is None:
        allowed = message_types(channel)
        hint = (
            "allowed: " + ", ".join(repr(t) for t in allowed)
            if allowed
            else "this channel is not available yet"
        )
        errors.append(
            FieldError(
                f"messages.{index}.messageType",
                f"{message_type!r} is not a message type of channel {channel!r} ({hint})",
            )
        )
        return None
    if not isinstance(data, Mapping):
        return None
    model = _shape_of(model, OTHER_SHAPES.get((channel, message_type), ()), data)
    try:
        payload = model.model_validate(dict(data), context=context)
    except ValidationError as exc:
        errors.extend(_field_errors(exc, prefix=f"messages.{index}.data"))
        return None
    if code_length is not None and not _fits_the_code(index, payload, code_length, errors):
        return None
    timeout = message.get("timeout")
    if not isinstance(timeout, int) or isinstance(timeout, bool):
        return None
    return Step(channel=channel, timeout=timeout, message_type=message_type, data=payload)


def _shape_of(
    main: type[Payload], others: tuple[type[Payload], ...], data: Mapping[str, Any]
) -> type[Payload]:
    """The payload model for ``data``: the main one if its fields could be the main one's,
    else another shape whose fields they all are, else the main one (which names what is
    wrong)."""

    def fits(model: type[Payload]) -> bool:
        return set(data) <= {info.alias or name for name, info in model.model_fields.items()}

    if fits(main):
        return main
    return next((model for model in others if fits(model)), main)


def _fits_the_code(
    index: int, payload: Payload, code_length: int, errors: list[FieldError]
) -> bool:
    """Whether the payload is still valid with the longest code in place of ``{{code}}``: a
    length limit must hold for what is sent, not for the 8-character placeholder. Checked here
    so that the rendering at send time (:meth:`Step.with_code`) cannot fail."""
    step = Step("", 0, "", payload)
    try:
        step.with_code("9" * code_length)
    except UnrenderableStep as exc:
        errors.extend(
            FieldError(
                f"messages.{index}.data.{path}",
                f"{message} once {CODE_PLACEHOLDER} is replaced by a {code_length}-digit code",
            )
            for path, message in exc.fields
        )
        return False
    return True


def _placeholder_paths(value: Any, path: str = "") -> list[str]:
    """Dotted paths of the strings in a dumped payload that hold ``{{code}}``."""
    if isinstance(value, str):
        return [path] if CODE_PLACEHOLDER in value else []
    if not isinstance(value, Mapping | list):
        return []
    items = value.items() if isinstance(value, Mapping) else enumerate(value)
    return [
        found
        for key, item in items
        for found in _placeholder_paths(item, f"{path}.{key}" if path else str(key))
    ]


def _field_errors(exc: ValidationError, prefix: str = "") -> list[FieldError]:
    found = []
    for error in exc.errors(include_url=False, include_input=False):
        # Union and function validators add their own names to the location; keep real fields.
        parts = [str(p) for p in error["loc"] if not str(p).startswith("function-")]
        path = ".".join(([prefix] if prefix else []) + parts) or prefix or "body"
        message = error["msg"]
        if error["type"] == "extra_forbidden":
            message = "unknown field"
        elif error["type"] == "string_pattern_mismatch":
            pattern = str(error.get("ctx", {}).get("pattern", ""))
            message = PATTERN_MESSAGES.get(pattern, "is not in the expected format")
        found.append(FieldError(path, message))
    return found


def _dedupe(errors: list[FieldError]) -> list[FieldError]:
    seen: dict[str, FieldError] = {}
    for error in errors:
        seen.setdefault(error.path, error)
    return list(seen.values())
