"""Payloads of rcs and email (seed 000) and of voice, telegram and viber (seed 003)."""

from __future__ import annotations

import socket
from typing import Any

import email_validator.deliverability
import pytest

from otpflow.flow.models import FlowRequest, InvalidRequest
from otpflow.flow.payloads import CHANNELS, PAYLOADS, EmailPayload, PhonePayload, message_types

PHONE = "919876543210"
DOC_URL = "https://cdn.example.com/files/statement.pdf"

# (channel, messageType, data, secret text that text_fields() must list)
VALID: list[tuple[str, str, dict[str, Any], str]] = [
    (
        "rcs",
        "text",
        {
            "recipient": PHONE,
            "bot_id": "acme-bot",
            "text": "Your code is 4821",
            "post_back_url": "https://app.example.com/dlr",
            "post_back_data": "order-7",
        },
        "Your code is 4821",
    ),
    (
        "rcs",
        "image",
        {
            "recipient": PHONE,
            "bot_id": "acme-bot",
            "media_url": "https://cdn.example.com/i/code.png",
            "caption": "Image code 1111",
        },
        "Image code 1111",
    ),
    (
        "rcs",
        "video",
        {
            "recipient": PHONE,
            "bot_id": "acme-bot",
            "media_url": "https://cdn.example.com/v/intro.mp4",
            "caption": "Video code 2222",
        },
        "Video code 2222",
    ),
    (
        "rcs",
        "audio",
        {
            "recipient": PHONE,
            "bot_id": "acme-bot",
            "media_url": "http://cdn.example.com/a/code.mp3",
            "caption": "Audio code 3333",
        },
        "Audio code 3333",
    ),
    (
        "rcs",
        "document",
        {
            "recipient": PHONE,
            "bot_id": "acme-bot",
            "media_url": DOC_URL,
            "caption": "Statement code 4444",
            "file_name": "statement.pdf",
        },
        "Statement code 4444",
    ),
    (
        "rcs",
        "template",
        {
            "recipient": PHONE,
            "bot_id": "acme-bot",
            "template_name": "otp_v2",
            "variables": {"code": "5555"},
        },
        "5555",
    ),
    (
        "email",
        "",
        {
            "to": "user@example.com",
            "from": "otp@acme.example.org",
            "subject": "Your sign-in code",
            "text": "Email code 6666",
            "html": "<p>Email code 6666</p>",
            "reply_to": "support@acme.example.org",
            "post_back_url": "https://app.example.com/dlr",
            "post_back_data": "mail-1",
        },
        "Email code 6666",
    ),
    (
        "voice",
        "",
        {
            "recipient": PHONE,
            "message": "Your code is 7 7 7 7",
            "voice": {"gender": "female", "language": "en-GB", "name": "en-GB-Standard-A"},
            "dtmf": True,
        },
        "Your code is 7 7 7 7",
    ),
    ("telegram", "", {"recipient": PHONE, "code": "100500"}, "100500"),
    (
        "viber",
        "",
        {
            "recipient": PHONE,
            "type": "text",
            "signature": "SenderID",
            "message": "Viber code 8888",
            "post_back_data": "v-1",
        },
        "Viber code 8888",
    ),
]

NEW_CHANNELS = {"rcs", "email", "voice", "telegram", "viber"}


def request(channel: str, message_type: str, data: dict[str, Any]) -> dict[str, Any]:
    return {
        "messages": [{"channel": channel, "timeout": 30, "messageType": message_type, "data": data}]
    }


def valid_data(channel: str, message_type: str) -> dict[str, Any]:
    for ch, mt, data, _ in VALID:
        if (ch, mt) == (channel, message_type):
            return dict(data)
    raise KeyError((channel, message_type))


def with_(channel: str, message_type: str, **changes: Any) -> dict[str, Any]:
    data = valid_data(channel, message_type)
    data.update(changes)
    return data


def without(channel: str, message_type: str, *names: str) -> dict[str, Any]:
    data = valid_data(channel, message_type)
    for name in names:
        del data[name]
    return data


def voice_with(**changes: Any) -> dict[str, Any]:
    data = valid_data("voice", "")
    data["voice"] = {**data["voice"], **changes}
    return data


@pytest.mark.parametrize(("channel", "message_type", "data", "secret"), VALID)
def test_valid_payload_parses_and_round_trips(
    channel: str, message_type: str, data: dict[str, Any], secret: str
) -> None:
    parsed = FlowRequest.parse(request(channel, message_type, data))
    step = parsed.steps[0]
    assert (step.channel, step.message_type) == (channel, message_type)
    assert type(step.data) is PAYLOADS[(channel, message_type)]
    again = parsed.to_json_dict()
    assert again["messages"][0]["data"] == data
    assert FlowRequest.parse(again) == parsed


@pytest.mark.parametrize(("channel", "message_type", "data", "secret"), VALID)
def test_text_fields_hold_the_secret_text(
    channel: str, message_type: str, data: dict[str, Any], secret: str
) -> None:
    payload = FlowRequest.parse(request(channel, message_type, data)).steps[0].data
    assert secret in payload.text_fields()


@pytest.mark.parametrize(("channel", "message_type", "data", "secret"), VALID)
def test_address_is_the_phone_or_the_email(
    channel: str, message_type: str, data: dict[str, Any], secret: str
) -> None:
    payload = FlowRequest.parse(request(channel, message_type, data)).steps[0].data
    if channel == "email":
        assert isinstance(payload, EmailPayload)
        assert payload.address == data["to"]
    else:
        assert isinstance(payload, PhonePayload)
        assert payload.address == PHONE


def test_every_channel_and_message_type_is_registered() -> None:
    assert set(CHANNELS) == {channel for channel, _ in PAYLOADS}
    assert message_types("rcs") == ["text", "image", "video", "audio", "document", "template"]
    for channel in ("sms", "email", "voice", "telegram", "viber"):
        assert message_types(channel) == [""]
    assert {(ch, mt) for ch, mt, _, _ in VALID} == {k for k in PAYLOADS if k[0] in NEW_CHANNELS}


def test_optional_fields_may_be_left_out() -> None:
    minimal = [
        ("rcs", "text", {"recipient": PHONE, "bot_id": "b", "text": "t"}),
        ("rcs", "image", {"recipient": PHONE, "bot_id": "b", "media_url": DOC_URL}),
        ("rcs", "document", {"recipient": PHONE, "bot_id": "b", "media_url": DOC_URL}),
        ("rcs", "template", {"recipient": PHONE, "bot_id": "b", "template_name": "t"}),
        (
            "email",
            "",
            {"to": "a@example.com", "from": "b@example.com", "subject": "s", "html": "h"},
        ),
        ("voice", "", {"recipient": PHONE, "message": "m"}),
        ("viber", "", {"recipient": PHONE, "type": "text", "signature": "S", "message": "m"}),
    ]
    for channel, message_type, data in minimal:
        parsed = FlowRequest.parse(request(channel, message_type, data))
        assert FlowRequest.parse(parsed.to_json_dict()) == parsed
    voice = FlowRequest.parse(request("voice", "", minimal[5][2])).steps[0].data
    assert voice.model_dump()["dtmf"] is False


def test_email_sender_is_from_in_json_and_from_underscore_in_python() -> None:
    parsed = FlowRequest.parse(request("email", "", valid_data("email", "")))
    payload = parsed.steps[0].data
    assert isinstance(payload, EmailPayload)
    assert payload.from_ == "otp@acme.example.org"
    data = parsed.to_json_dict()["messages"][0]["data"]
    assert data["from"] == "otp@acme.example.org"
    assert "from_" not in data


def test_email_validation_makes_no_dns_lookups(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_network(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("email validation must not touch the network")

    monkeypatch.setattr(email_validator.deliverability, "validate_email_deliverability", no_network)
    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    monkeypatch.setattr(socket, "socket", no_network)
    data = with_("email", "", to="someone@no-such-domain-otpflow.invalid-tld-zz")
    data["from"] = "sender@another-missing-domain-otpflow.org"
    FlowRequest.parse(request("email", "", data))


D = "messages.0.data"

# (case id, channel, messageType, data, dotted path that must be named)
INVALID: list[tuple[str, str, str, dict[str, Any], str]] = [
    # rcs
    ("rcs unknown type", "rcs", "sticker", valid_data("rcs", "text"), "messages.0.messageType"),
    ("rcs empty type", "rcs", "", valid_data("rcs", "text"), "messages.0.messageType"),
    ("rcs unknown field", "rcs", "text", with_("rcs", "text", colour="red"), f"{D}.colour"),
    ("rcs text missing", "rcs", "text", without("rcs", "text", "text"), f"{D}.text"),
    ("rcs text empty", "rcs", "text", with_("rcs", "text", text=""), f"{D}.text"),
    ("rcs text too long", "rcs", "text", with_("rcs", "text", text="x" * 3073), f"{D}.text"),
    ("rcs bot_id missing", "rcs", "text", without("rcs", "text", "bot_id"), f"{D}.bot_id"),
    ("rcs bot_id too long", "rcs", "text", with_("rcs", "text", bot_id="b" * 129), f"{D}.bot_id"),
    ("rcs bot_id int", "rcs", "text", with_("rcs", "text", bot_id=7), f"{D}.bot_id"),
    (
        "rcs phone plus",
        "rcs",
        "text",
        with_("rcs", "text", recipient="+919876543210"),
        f"{D}.recipient",
    ),
    (
        "rcs phone int",
        "rcs",
        "text",
        with_("rcs", "text", recipient=919876543210),
        f"{D}.recipient",
    ),
    (
        "rcs post_back_url ftp",
        "rcs",
        "text",
        with_("rcs", "text", post_back_url="ftp://app.example.com/dlr"),
        f"{D}.post_back_url",
    ),
    (
        "rcs post_back_data too long",
        "rcs",
        "text",
        with_("rcs", "text", post_back_data="d" * 257),
        f"{D}.post_back_data",
    ),
    (
        "rcs media_url scheme",
        "rcs",
        "image",
        with_("rcs", "image", media_url="file:///etc/passwd"),
        f"{D}.media_url",
    ),
    (
        "rcs media_url not a url",
        "rcs",
        "video",
        with_("rcs", "video", media_url="not a url"),
        f"{D}.media_url",
    ),
    (
        "rcs media_url missing",
        "rcs",
        "audio",
        without("rcs", "audio", "media_url"),
        f"{D}.media_url",
    ),
    ("rcs caption empty", "rcs", "image", with_("rcs", "image", caption=""), f"{D}.caption"),
    (
        "rcs caption too long",
        "rcs",
        "document",
        with_("rcs", "document", caption="c" * 2001),
        f"{D}.caption",
    ),
    (
        "rcs file_name too long",
        "rcs",
        "document",
        with_("rcs", "document", file_name="f" * 256),
        f"{D}.file_name",
    ),
    (
        "rcs file_name on image",
        "rcs",
        "image",
        with_("rcs", "image", file_name="a.png"),
        f"{D}.file_name",
    ),
    (
        "rcs template_name missing",
        "rcs",
        "template",
        without("rcs", "template", "template_name"),
        f"{D}.template_name",
    ),
    (
        "rcs template variable int",
        "rcs",
        "template",
        with_("rcs", "template", variables={"code": 5555}),
        f"{D}.variables.code",
    ),
    (
        "rcs template variable too long",
        "rcs",
        "template",
        with_("rcs", "template", variables={"code": "v" * 1025}),
        f"{D}.variables.code",
    ),
    # email
    ("email html type", "email", "html", valid_data("email", ""), "messages.0.messageType"),
    ("email bad to", "email", "", with_("email", "", to="user.example.com"), f"{D}.to"),
    ("email to no dot", "email", "", with_("email", "", to="user@localhost"), f"{D}.to"),
    ("email bad from", "email", "", {**valid_data("email", ""), "from": "otp@"}, f"{D}.from"),
    ("email from missing", "email", "", without("email", "", "from"), f"{D}.from"),
    (
        "email from_ not accepted",
        "email",
        "",
        {**without("email", "", "from"), "from_": "otp@acme.example.org"},
        f"{D}.from_",
    ),
    ("email bad reply_to", "email", "", with_("email", "", reply_to="nobody"), f"{D}.reply_to"),
    ("email to a list", "email", "", with_("email", "", to=["a@example.com"]), f"{D}.to"),
    ("email no text or html", "email", "", without("email", "", "text", "html"), D),
    ("email subject missing", "email", "", without("email", "", "subject"), f"{D}.subject"),
    ("email subject empty", "email", "", with_("email", "", subject=""), f"{D}.subject"),
    ("email subject too long", "email", "", with_("email", "", subject="s" * 999), f"{D}.subject"),
    (
        "email subject header injection",
        "email",
        "",
        with_("email", "", subject="Hi\r\nBcc: all@example.com"),
        f"{D}.subject",
    ),
    ("email text empty", "email", "", with_("email", "", text=""), f"{D}.text"),
    ("email html too long", "email", "", with_("email", "", html="h" * 200_001), f"{D}.html"),
    ("email recipient field", "email", "", with_("email", "", recipient=PHONE), f"{D}.recipient"),
    # voice
    ("voice gender robot", "voice", "", voice_with(gender="robot"), f"{D}.voice.gender"),
    ("voice language lower", "voice", "", voice_with(language="en-gb"), f"{D}.voice.language"),
    ("voice language bare", "voice", "", voice_with(language="english"), f"{D}.voice.language"),
    ("voice name empty", "voice", "", voice_with(name=""), f"{D}.voice.name"),
    ("voice name too long", "voice", "", voice_with(name="n" * 65), f"{D}.voice.name"),
    ("voice unknown voice field", "voice", "", voice_with(speed=2), f"{D}.voice.speed"),
    ("voice dtmf string", "voice", "", with_("voice", "", dtmf="5"), f"{D}.dtmf"),
    ("voice dtmf int", "voice", "", with_("voice", "", dtmf=1), f"{D}.dtmf"),
    ("voice message too long", "voice", "", with_("voice", "", message="m" * 1001), f"{D}.message"),
    ("voice message missing", "voice", "", without("voice", "", "message"), f"{D}.message"),
    ("voice bad phone", "voice", "", with_("voice", "", recipient="1234567"), f"{D}.recipient"),
    ("voice voice not object", "voice", "", with_("voice", "", voice="female"), f"{D}.voice"),
    # telegram
    ("telegram letters", "telegram", "", with_("telegram", "", code="12ab56"), f"{D}.code"),
    ("telegram 3 digits", "telegram", "", with_("telegram", "", code="123"), f"{D}.code"),
    ("telegram 11 digits", "telegram", "", with_("telegram", "", code="1" * 11), f"{D}.code"),
    ("telegram code int", "telegram", "", with_("telegram", "", code=100500), f"{D}.code"),
    (
        "telegram trailing newline",
        "telegram",
        "",
        with_("telegram", "", code="1234\n"),
        f"{D}.code",
    ),
    ("telegram message field", "telegram", "", with_("telegram", "", message="hi"), f"{D}.message"),
    ("telegram code missing", "telegram", "", without("telegram", "", "code"), f"{D}.code"),
    (
        "telegram no recipient",
        "telegram",
        "",
        without("telegram", "", "recipient"),
        f"{D}.recipient",
    ),
    ("telegram type", "telegram", "otp", valid_data("telegram", ""), "messages.0.messageType"),
    # viber
    ("viber type image", "viber", "", with_("viber", "", type="image"), f"{D}.type"),
    ("viber type missing", "viber", "", without("viber", "", "type"), f"{D}.type"),
    ("viber signature empty", "viber", "", with_("viber", "", signature=""), f"{D}.signature"),
    ("viber signature long", "viber", "", with_("viber", "", signature="S" * 33), f"{D}.signature"),
    ("viber message long", "viber", "", with_("viber", "", message="m" * 1001), f"{D}.message"),
    ("viber message null", "viber", "", with_("viber", "", message=None), f"{D}.message"),
    (
        "viber post_back_url",
        "viber",
        "",
        with_("viber", "", post_back_url="https://app.example.com/dlr"),
        f"{D}.post_back_url",
    ),
    (
        "viber bad phone",
        "viber",
        "",
        with_("viber", "", recipient="0919876543210"),
        f"{D}.recipient",
    ),
]


@pytest.mark.parametrize(
    ("channel", "message_type", "data", "path"),
    [pytest.param(*case[1:], id=case[0]) for case in INVALID],
)
def test_invalid_payload_names_the_bad_field(
    channel: str, message_type: str, data: dict[str, Any], path: str
) -> None:
    with pytest.raises(InvalidRequest) as caught:
        FlowRequest.parse(request(channel, message_type, data))
    paths = [error.path for error in caught.value.errors]
    assert path in paths, paths


def test_invalid_cases_are_many_and_distinct() -> None:
    assert len(INVALID) >= 30
    assert len({case[0] for case in INVALID}) == len(INVALID)
    assert {case[1] for case in INVALID} == NEW_CHANNELS


def test_every_bad_field_of_a_step_is_named_at_once() -> None:
    data = {
        "recipient": "+44",
        "bot_id": "",
        "media_url": "javascript:alert(1)",
        "caption": "",
        "extra": 1,
    }
    with pytest.raises(InvalidRequest) as caught:
        FlowRequest.parse(request("rcs", "image", data))
    paths = {error.path for error in caught.value.errors}
    assert paths == {f"{D}.{name}" for name in data}


def test_errors_in_two_steps_of_different_channels() -> None:
    raw = {
        "messages": [
            {"channel": "telegram", "timeout": 0, "data": {"recipient": PHONE, "code": "12"}},
            {
                "channel": "email",
                "timeout": 0,
                "data": without("email", "", "text", "html"),
            },
        ]
    }
    with pytest.raises(InvalidRequest) as caught:
        FlowRequest.parse(raw)
    paths = [error.path for error in caught.value.errors]
    assert paths == ["messages.0.data.code", "messages.1.data"]


@pytest.mark.parametrize("number", ["+919876543210", "91 98765 43210", "091-9876543210"])
def test_a_phone_number_with_a_plus_or_spaces_is_told_what_is_wanted(number: str) -> None:
    sms = {"recipient": number, "message": "Code 4821", "sender_id": "ACME", "route": "otp"}
    with pytest.raises(InvalidRequest) as caught:
        FlowRequest.parse(request("sms", "", sms))
    [error] = caught.value.errors
    assert error.path == f"{D}.recipient"
    assert error.message == (
        "must be digits only, with the country code and no + or spaces "
        "(8 to 15 digits, e.g. 919876543210)"
    )
    assert str(caught.value) == f"{D}.recipient: {error.message}"
    assert "pattern" not in str(caught.value)  # never the regular expression


@pytest.mark.parametrize(
    ("channel", "data", "field", "wanted"),
    [
        ("email", with_("email", "", subject="Your code\nis 1"), "subject", "one line"),
        ("voice", voice_with(language="english"), "voice.language", "like en-GB"),
        ("telegram", {"recipient": PHONE, "code": "12ab"}, "code", "4 to 10 digits"),
    ],
)
def test_every_pattern_is_explained_in_words(
    channel: str, data: dict[str, Any], field: str, wanted: str
) -> None:
    with pytest.raises(InvalidRequest) as caught:
        FlowRequest.parse(request(channel, "", data))
    [error] = caught.value.errors
    assert error.path == f"{D}.{field}"
    assert wanted in error.message and "pattern" not in error.message


def sms_with(message: str) -> dict[str, Any]:
    return {"recipient": PHONE, "message": message, "sender_id": "ACME", "route": "otp"}


@pytest.mark.parametrize("length", [9, 10])
def test_lengths_are_checked_with_the_code_the_flow_will_send(length: int) -> None:
    # 1600 characters with the 8-character placeholder; 1601-1602 once the code is in
    near_the_limit = request("sms", "", sms_with("x" * 1592 + "{{code}}"))
    with pytest.raises(InvalidRequest) as caught:
        FlowRequest.parse(near_the_limit | {"otp": {"length": length}})
    [error] = caught.value.errors
    assert error.path == f"{D}.message"
    assert f"{length}-digit code" in error.message and "1600" in error.message
    FlowRequest.parse(near_the_limit | {"otp": {"length": 8}})  # fits exactly


def test_an_unreadable_otp_block_checks_lengths_with_the_longest_code() -> None:
    near_the_limit = request("sms", "", sms_with("x" * 1591 + "{{code}}"))
    with pytest.raises(InvalidRequest) as caught:
        FlowRequest.parse(near_the_limit | {"otp": {"length": "ten"}})
    paths = {error.path for error in caught.value.errors}
    assert paths == {"otp.length", f"{D}.message"}


@pytest.mark.parametrize(
    ("channel", "message_type", "data", "field"),
    [
        ("sms", "", sms_with("Your code is {{code}}"), "message"),
        ("telegram", "", {"recipient": PHONE, "code": "{{code}}"}, "code"),
        (
            "rcs",
            "template",
            {
                "recipient": PHONE,
                "bot_id": "b",
                "template_name": "t",
                "variables": {"otp": "{{code}}"},
            },
            "variables.otp",
        ),
    ],
)
def test_a_code_placeholder_without_an_otp_block_is_refused(
    channel: str, message_type: str, data: dict[str, Any], field: str
) -> None:
    with pytest.raises(InvalidRequest) as caught:
        FlowRequest.parse(request(channel, message_type, data))
    [error] = caught.value.errors
    assert error.path == f"{D}.{field}"
    assert "otp" in error.message
    FlowRequest.parse(request(channel, message_type, data) | {"otp": {}})


@pytest.mark.parametrize("breaker", ["\u2028", "\u2029", "\x0b", "\x0c", "\x85", "\x00", "\t"])
def test_an_email_subject_is_one_line_without_control_characters(breaker: str) -> None:
    data = with_("email", "", subject=f"Your code{breaker}Bcc: everyone@example.org")
    with pytest.raises(InvalidRequest) as caught:
        FlowRequest.parse(request("email", "", data))
    [error] = caught.value.errors
    assert error.path == f"{D}.subject"
    assert "one line" in error.message and breaker not in str(caught.value)
    FlowRequest.parse(request("email", "", with_("email", "", subject="Ваш код — 4821 ✓")))


@pytest.mark.parametrize("number", ["9800000001", "15550000000", "999123456789", "10000000000"])
def test_a_phone_number_must_be_a_real_number_with_its_country_code(number: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        FlowRequest.parse(request("sms", "", sms_with("Code 4821") | {"recipient": number}))
    [error] = caught.value.errors
    assert error.path == f"{D}.recipient"
    assert error.message == (
        "is not a valid phone number: the country code, then the number "
        "(digits only, e.g. 919876543210)"
    )
    assert number not in str(caught.value)


def test_limits_count_a_recipient_however_it_is_written() -> None:
    flow = FlowRequest.parse(
        {
            "messages": [
                {"channel": "sms", "timeout": 0, "data": sms_with("Code 1")},
                {"channel": "voice", "timeout": 0, "data": {"recipient": PHONE, "message": "1"}},
                {"channel": "email", "timeout": 0, "data": with_("email", "", to="Ana+otp@X.org")},
                {"channel": "email", "timeout": 0, "data": with_("email", "", to="ANA@x.ORG")},
            ]
        }
    )
    assert flow.messages_per_recipient() == {"+919876543210": 2, "ana@x.org": 2}
    # the messages still go where the caller said (the domain, case-insensitive, in lowercase)
    assert flow.addresses() == {PHONE, "Ana+otp@x.org", "ANA@x.org"}


SEED_004_BODY = {
    "to": PHONE,
    "phoneId": "1029384756",
    "type": "interactive",
    "interactive": {
        "type": "button",
        "body": {"text": "Code 4821"},
        "action": {"buttons": [{"type": "reply", "reply": {"id": "ok", "title": "Got it"}}]},
    },
    "source": "API",
    "linkWithRecord": True,
    "submissionStatus": False,
}


def test_the_seed_004_whatsapp_body_is_accepted_as_it_stands() -> None:
    parsed = FlowRequest.parse(request("whatsapp", "interactive", SEED_004_BODY))
    payload = parsed.steps[0].data
    assert payload.address == PHONE and payload.text_fields() == ["Code 4821"]
    assert parsed.messages_per_recipient() == {"+919876543210": 1}
    assert parsed.to_json_dict()["messages"][0]["data"] == SEED_004_BODY
    assert FlowRequest.parse(parsed.to_json_dict()) == parsed
    # the ingest field names still work beside it
    ingest = {"recipient": PHONE, "phone_id": "p1", "interactive": SEED_004_BODY["interactive"]}
    FlowRequest.parse(request("whatsapp", "interactive", ingest))


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"to": "9800000001"}, "to"),
        ({"type": "template"}, "type"),
        ({"linkWithRecord": "yes"}, "linkWithRecord"),
        ({"phoneId": ""}, "phoneId"),
    ],
)
def test_a_bad_seed_004_body_names_the_field(changes: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        FlowRequest.parse(request("whatsapp", "interactive", SEED_004_BODY | changes))
    assert [error.path for error in caught.value.errors] == [f"{D}.{field}"]


def test_the_two_whatsapp_shapes_do_not_mix() -> None:
    mixed = SEED_004_BODY | {"recipient": PHONE}
    with pytest.raises(InvalidRequest) as caught:
        FlowRequest.parse(request("whatsapp", "interactive", mixed))
    paths = {error.path for error in caught.value.errors}
    assert f"{D}.to" in paths and f"{D}.phone_id" in paths  # told in the ingest names
