"""The MessageFlow-style SMS API (seed 002): ``POST /v2.1/sms`` with ``Application-Key`` and
``Authorization`` headers; delivery reports Delivered / Undelivered / Expired.

The seed shows the endpoint, the headers and the report statuses; the body and reply are
OTPflow's reading of "content, recipients and optional parameters", the shapes its simulator
speaks:

- request ``{sender, message, phoneNumbers: ["+<digits>"], priority, webhookUrl, externalId}``;
  ``priority`` asks for the MessageFlow Priority lane, used for ``route == "otp"``;
- reply ``{meta: {status, numberOfErrors, numberOfData}, data: [{smsId, phoneNumber,
  externalId}], errors: [{title, message, source}]}``;
- report (to ``webhookUrl``, batched) ``[{smsId, phoneNumber, externalId, status,
  statusTime}]``.
"""

from __future__ import annotations

from typing import Any

import httpx

from otpflow.config.settings import MessageFlowSettings
from otpflow.flow.models import Step
from otpflow.flow.payloads import SmsPayload
from otpflow.flow.redact import mask
from otpflow.flow.states import DlrStatus
from otpflow.providers.base import Callback, DeliveryReport, report_status, send_json
from otpflow.providers.errors import InvalidDlr, ProviderRejected

SMS_PATH = "/v2.1/sms"

STATUS_MAP: dict[str, DlrStatus] = {
    "accepted": DlrStatus.ACCEPTED,
    "sent": DlrStatus.SENT,
    "delivered": DlrStatus.DELIVERED,
    "undelivered": DlrStatus.UNDELIVERED,
    "expired": DlrStatus.EXPIRED,
    "rejected": DlrStatus.REJECTED,
}


class MessageFlowProvider:
    name = "messageflow"
    channels = frozenset({"sms"})
    accepted_is_delivered = False

    def __init__(self, settings: MessageFlowSettings, client: httpx.Client) -> None:
        self._url = settings.base_url.rstrip("/") + SMS_PATH
        self._headers = {
            "Application-Key": settings.application_key.get_secret_value(),
            "Authorization": settings.authorization.get_secret_value(),
        }
        self._client = client

    @staticmethod
    def render(step: Step, callback: Callback) -> dict[str, Any]:
        data = step.data
        if not isinstance(data, SmsPayload):
            raise ProviderRejected("messageflow", f"cannot send {step.channel}")
        return {
            "sender": data.sender_id,
            "message": data.message,
            "phoneNumbers": ["+" + data.recipient],
            "priority": data.route == "otp",
            "webhookUrl": callback.url,
            "externalId": callback.data,
        }

    def send(self, step: Step, callback: Callback) -> str:
        return send_json(
            self._client,
            self.name,
            self._url,
            self.render(step, callback),
            self._headers,
            self.message_id,
        )

    def message_id(self, reply: dict[str, Any]) -> object:
        """The one recipient's ``smsId``; an entry in ``errors`` is the provider's refusal."""
        errors = reply.get("errors") or []
        if not isinstance(errors, list):
            raise TypeError("errors is not a list")
        if errors:
            first = errors[0] if isinstance(errors[0], dict) else {}
            reason = first.get("message") or first.get("title") or "rejected"
            raise ProviderRejected(self.name, mask(str(reason))[:200])
        return reply["data"][0]["smsId"]

    def for_caller(self, body: Any, post_back_data: str | None) -> Any:
        items = body if isinstance(body, list) else [body]
        return [{**item, "externalId": post_back_data} for item in items]

    def parse_dlr(self, body: Any) -> list[DeliveryReport]:
        items = body if isinstance(body, list) else [body]
        reports = []
        for item in items:
            if not isinstance(item, dict) or not isinstance(item.get("status"), str):
                raise InvalidDlr("a MessageFlow report is a list of objects with a status")
            status = report_status(STATUS_MAP, item["status"], "MessageFlow")
            token = item.get("externalId")
            reports.append(
                DeliveryReport(
                    status=status,
                    provider_status=item["status"],
                    message_id=str(item["smsId"]) if item.get("smsId") else None,
                    token=token if isinstance(token, str) else None,
                )
            )
        if not reports:
            raise InvalidDlr("an empty MessageFlow report")
        return reports
