"""The JSON gateway (seed 003): ``POST /api/json.php`` with ``auth`` in the body and one
``data[]`` item per step, for voice, telegram, viber, whatsapp, rcs and sms.

Each step is one item ``{type: "pipeline", pipeline: [<channel>], id, phone, <channel>: {...},
hook}``: a one-channel pipeline, because OTPflow itself runs the fallback. Replies as the seed:
``{success, error}`` for the request, ``data[i] = {success, error, data: {id, msg_id}}`` per item
("Access denied" is an authentication error, an item error such as "Error in Alpha-name" a
rejection). The report posted to ``hook`` is not in the seed; OTPflow reads
``{id, msg_id, channel, phone, status, time}`` with status delivered / undelivered / expired /
rejected / read / sent, the shape its simulator sends.
"""

from __future__ import annotations

import hashlib
from typing import Any

import httpx

from otpflow.config.settings import GatewaySettings
from otpflow.flow.models import Step
from otpflow.flow.payloads import (
    RcsTextPayload,
    SmsPayload,
    TelegramPayload,
    ViberPayload,
    VoicePayload,
    WhatsAppCustomPayload,
)
from otpflow.flow.redact import mask
from otpflow.flow.states import DlrStatus
from otpflow.providers.base import Callback, DeliveryReport, report_status, send_json
from otpflow.providers.errors import (
    InvalidDlr,
    ProviderAuthError,
    ProviderRejected,
)

PATH = "/api/json.php"

STATUS_MAP: dict[str, DlrStatus] = {
    "sent": DlrStatus.SENT,
    "delivered": DlrStatus.DELIVERED,
    "read": DlrStatus.READ,
    "undelivered": DlrStatus.UNDELIVERED,
    "failed": DlrStatus.FAILED,
    "expired": DlrStatus.EXPIRED,
    "rejected": DlrStatus.REJECTED,
}


def item_id(callback: Callback) -> int:
    """The gateway wants an integer id per item: a stable one derived from the step's token."""
    return int(hashlib.sha256(callback.data.encode()).hexdigest()[:12], 16)


class GatewayProvider:
    name = "gateway"
    channels = frozenset({"voice", "telegram", "viber", "whatsapp", "rcs", "sms"})
    accepted_is_delivered = False

    def __init__(self, settings: GatewaySettings, client: httpx.Client) -> None:
        self._url = settings.base_url.rstrip("/") + PATH
        self._auth = settings.auth.get_secret_value()
        self._client = client

    @staticmethod
    def channel_object(step: Step) -> dict[str, Any]:
        data = step.data
        if isinstance(data, VoicePayload):
            voice: dict[str, Any] = {"message": data.message, "dtmf": data.dtmf}
            if data.voice is not None:
                voice["voice"] = data.voice.model_dump()
            return voice
        if isinstance(data, TelegramPayload):
            return {"message": data.code}
        if isinstance(data, ViberPayload):
            return {"type": data.type, "signature": data.signature, "message": data.message}
        if isinstance(data, SmsPayload):
            return {"signature": data.sender_id, "message": data.message}
        if isinstance(data, WhatsAppCustomPayload):
            return {"signature": data.phone_id, "message": data.text}
        if isinstance(data, RcsTextPayload):
            return {"signature": data.bot_id, "message": data.text}
        raise ProviderRejected("gateway", f"cannot send {step.channel}/{step.message_type!r}")

    def render(self, step: Step, callback: Callback) -> dict[str, Any]:
        recipient = getattr(step.data, "recipient", "")
        item = {
            "type": "pipeline",
            "pipeline": [step.channel],
            "id": item_id(callback),
            "phone": int(recipient),
            step.channel: self.channel_object(step),
            "hook": callback.url,
        }
        return {"auth": self._auth, "data": [item]}

    def send(self, step: Step, callback: Callback) -> str:
        return send_json(
            self._client,
            self.name,
            self._url,
            self.render(step, callback),
            {"Content-Type": "application/json"},
            self.message_id,
        )

    def message_id(self, reply: dict[str, Any]) -> object:
        """The one item's ``msg_id``; ``success: false`` on the request ("Access denied" is our
        credentials) or on the item is the gateway's refusal."""
        if reply["success"] is False:
            error = mask(str(reply.get("error") or "refused"))[:200]
            if error.lower() == "access denied":
                raise ProviderAuthError(self.name, error)
            raise ProviderRejected(self.name, error)
        if reply["success"] is not True:
            raise ValueError("success is neither true nor false")
        item = reply["data"][0]
        if item["success"] is False:
            raise ProviderRejected(self.name, mask(str(item.get("error") or "refused"))[:200])
        if item["success"] is not True:
            raise ValueError("item success is neither true nor false")
        return item["data"]["msg_id"]

    def for_caller(self, body: Any, post_back_data: str | None) -> Any:
        return {**body, "post_back_data": post_back_data}

    def parse_dlr(self, body: Any) -> list[DeliveryReport]:
        if not isinstance(body, dict) or not isinstance(body.get("status"), str):
            raise InvalidDlr("a gateway report is a JSON object with a status")
        status = report_status(STATUS_MAP, body["status"], "gateway")
        msg_id = body.get("msg_id")
        return [
            DeliveryReport(
                status=status,
                provider_status=body["status"],
                message_id=str(msg_id) if msg_id is not None else None,
                token=None,  # the gateway echoes nothing of ours: the token is in the hook URL
            )
        ]
