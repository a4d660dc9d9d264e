"""The flow request (seed 000): its envelope, its steps, and how it is checked.

A request is checked in two passes so that every bad field is named by its path at once:
the envelope (``messages``, ``channel``, ``timeout``, ...) and then each step's ``data`` against
the payload model registered for its (channel, messageType) in :mod:`otpflow.flow.payloads`.
:meth:`FlowRequest.to_json_dict` writes aliases back, so a request round-trips.

Error paths are dotted and zero-based, as the API returns them: ``messages.1.data.recipient``.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
)

from otpflow.flow.fields import ALLOW_PRIVATE_DESTINATIONS, PATTERN_MESSAGES, CallerUrl
from otpflow.flow.payloads import (
    CHANNELS,
    OTHER_SHAPES,
    PAYLOADS,
    Channel,
    Payload,
    message_types,
)

MAX_STEPS = 10
MAX_TIMEOUT_SECONDS = 300


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
    # the caller knows this person (signed in, paid before): the fraud guard lets it through
    trusted: Annotated[bool, Field(strict=True)] = False
    # "auto": OTPflow may reorder the steps per country by measured conversion and speed;
    # "caller" (the default): the caller's order is law (seed 000)
    channelOrder: Literal["caller", "auto"] = "caller"


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
    trusted: bool = False
    channel_order: str = "caller"

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
            trusted=envelope.trusted,
            channel_order=envelope.channelOrder,
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
            "trusted": self.trusted,
            "channelOrder": self.channel_order,
        }

    def addresses(self) -> set[str]:
        """Every phone number and email address the flow sends to."""
        return {step.data.address for step in self.steps}

    def phone_numbers(self) -> list[str]:
        """Every phone number the flow sends to (digits with the country code), once each
        however it is written (``4407911…`` and ``447911…`` are one number): the recipients of
        paid messages, which the fraud guard screens."""
        phones = (step.data for step in self.steps if step.channel != "email")
        return sorted({data.limit_key.removeprefix("+") for data in phones})

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
    if not isinstance(channel, str) or channel not in CHANNELS or not isinstance(message_type, str):
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
