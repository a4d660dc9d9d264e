"""The Zixflow-style ingest API: SMS (seed 001), WhatsApp (template, custom text, and the
seed-004 interactive reply buttons), RCS and email, all with ``post_back_url`` delivery reports.

The RCS and email paths are not in the seeds; OTPflow uses ``/api/ingest/rcs/v1/message/send``
(``recipient, bot_id, type`` and the type's fields) and ``/api/ingest/email/v1/send``
(``to, from, subject, text, html, reply_to``), the shapes its simulator speaks.

Postback (SPEC): ``workspace_id, type, message_id, request_id, channel, recipient, status,
remark, status_at, post_back_data``. The send reply's ``request_id`` is the message id we keep.

Seed 004's own WhatsApp body (``to, phoneId, type, interactive, ...``) goes as it stands to its
campaign API, ``/api/v1/campaign/whatsapp/message/send``, which takes no callback URL.
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from otpflow.config.settings import ZixflowSettings
from otpflow.flow.models import Step
from otpflow.flow.payloads import (
    EmailPayload,
    RcsBase,
    RcsDocumentPayload,
    RcsMediaPayload,
    RcsTemplatePayload,
    RcsTextPayload,
    SmsPayload,
    WhatsAppCampaignInteractivePayload,
    WhatsAppCustomPayload,
    WhatsAppInteractivePayload,
    WhatsAppTemplatePayload,
)
from otpflow.flow.redact import mask
from otpflow.flow.states import DlrStatus
from otpflow.providers.base import Callback, DeliveryReport, report_status, send_json
from otpflow.providers.errors import InvalidDlr, ProviderRejected

SMS_PATH = "/api/ingest/sms/v1/message/send"
WHATSAPP_TEMPLATE_PATH = "/api/ingest/whatsapp/v1/template/send"
WHATSAPP_INTERACTIVE_PATH = "/api/ingest/whatsapp/v1/message/interactive/reply-buttons/send"
WHATSAPP_TEXT_PATH = "/api/ingest/whatsapp/v1/message/text/send"
RCS_PATH = "/api/ingest/rcs/v1/message/send"
EMAIL_PATH = "/api/ingest/email/v1/send"
# seed 004's campaign API: no callback URL, and a {status, message} reply without an id
WHATSAPP_CAMPAIGN_PATH = "/api/v1/campaign/whatsapp/message/send"

# Zixflow postback statuses -> the normalised set.
STATUS_MAP: dict[str, DlrStatus] = {
    "queued": DlrStatus.ACCEPTED,
    "accepted": DlrStatus.ACCEPTED,
    "submitted": DlrStatus.ACCEPTED,
    "sent": DlrStatus.SENT,
    "delivered": DlrStatus.DELIVERED,
    "read": DlrStatus.READ,
    "failed": DlrStatus.FAILED,
    "undelivered": DlrStatus.UNDELIVERED,
    "expired": DlrStatus.EXPIRED,
    "rejected": DlrStatus.REJECTED,
}


class ZixflowProvider:
    name = "zixflow"
    channels = frozenset({"sms", "whatsapp", "rcs", "email"})
    accepted_is_delivered = False

    def __init__(self, settings: ZixflowSettings, client: httpx.Client) -> None:
        self._base_url = settings.base_url.rstrip("/")
        self._headers = {
            "x-api-key": settings.api_key.get_secret_value(),
            "x-workspace-id": settings.workspace_id,
        }
        self._client = client

    def send(self, step: Step, callback: Callback) -> str:
        path, body = self.render(step, callback)
        campaign = isinstance(step.data, WhatsAppCampaignInteractivePayload)
        reader = self.campaign_message_id if campaign else self.message_id
        return send_json(
            self._client, self.name, self._base_url + path, body, self._headers, reader
        )

    def campaign_message_id(self, reply: dict[str, Any]) -> object:
        """Seed 004's reply is ``{status, message}``: ``status: false`` is the refusal. It
        names no message and no report ever follows, so the id kept is one made here."""
        if reply["status"] is False:
            raise ProviderRejected(self.name, mask(str(reply.get("message", "")))[:200])
        if reply["status"] is not True:
            raise ValueError("status is neither true nor false")
        return f"campaign-{uuid.uuid4()}"

    def message_id(self, reply: dict[str, Any]) -> object:
        """The send reply's ``request_id``; ``success: false`` is the provider's refusal."""
        if reply["success"] is False:
            raise ProviderRejected(self.name, mask(str(reply.get("message", "")))[:200])
        if reply["success"] is not True:
            raise ValueError("success is neither true nor false")
        return reply["request_id"]

    @staticmethod
    def render(step: Step, callback: Callback) -> tuple[str, dict[str, Any]]:
        """The provider request for one step: (path, JSON body)."""
        data = step.data
        post_back = {"post_back_url": callback.url, "post_back_data": callback.data}
        if isinstance(data, SmsPayload):
            body: dict[str, Any] = {
                "recipient": data.recipient,
                "message": data.message,
                "sender_id": data.sender_id,
                "route": data.route,
                "is_flash": data.is_flash,
            }
            for optional in ("dlt_entity_id", "dlt_template_id"):
                if getattr(data, optional) is not None:
                    body[optional] = getattr(data, optional)
            return SMS_PATH, body | post_back
        if isinstance(data, WhatsAppTemplatePayload):
            body = {
                "recipient": data.recipient,
                "phone_id": data.phone_id,
                "template_name": data.template_name,
                "language": data.language,
            }
            if data.variables is not None:
                body["variables"] = data.variables
            return WHATSAPP_TEMPLATE_PATH, body | post_back
        if isinstance(data, WhatsAppInteractivePayload):
            body = {
                "recipient": data.recipient,
                "phone_id": data.phone_id,
                "interactive": data.interactive.model_dump(mode="json", exclude_none=True),
            }
            return WHATSAPP_INTERACTIVE_PATH, body | post_back
        if isinstance(data, WhatsAppCampaignInteractivePayload):
            # the seed's own body, as it stands (its API takes no post_back_url)
            body = data.model_dump(mode="json", by_alias=True, exclude_none=True)
            return WHATSAPP_CAMPAIGN_PATH, body
        if isinstance(data, WhatsAppCustomPayload):
            body = {
                "recipient": data.recipient,
                "phone_id": data.phone_id,
                "text": data.text,
                "preview_url": data.preview_url,
            }
            return WHATSAPP_TEXT_PATH, body | post_back
        if isinstance(data, RcsBase):
            return RCS_PATH, rcs_body(data, step.message_type) | post_back
        if isinstance(data, EmailPayload):
            body = {"to": data.to, "from": data.from_, "subject": data.subject}
            for optional in ("text", "html", "reply_to"):
                if getattr(data, optional) is not None:
                    body[optional] = getattr(data, optional)
            return EMAIL_PATH, body | post_back
        raise ProviderRejected("zixflow", f"cannot send {step.channel}/{step.message_type!r}")

    def for_caller(self, body: Any, post_back_data: str | None) -> Any:
        return {**body, "post_back_data": post_back_data}

    def parse_dlr(self, body: Any) -> list[DeliveryReport]:
        if not isinstance(body, dict):
            raise InvalidDlr("a Zixflow postback is a JSON object")
        raw_status = body.get("status")
        if not isinstance(raw_status, str):
            raise InvalidDlr("postback has no status")
        status = report_status(STATUS_MAP, raw_status, "postback")
        message_id = body.get("request_id") or body.get("message_id")
        token = body.get("post_back_data")
        return [
            DeliveryReport(
                status=status,
                provider_status=raw_status,
                message_id=str(message_id) if message_id else None,
                token=token if isinstance(token, str) else None,
            )
        ]


def rcs_body(data: RcsBase, message_type: str) -> dict[str, Any]:
    """The RCS endpoint's body for each of its message types."""
    body: dict[str, Any] = {
        "recipient": data.recipient,
        "bot_id": data.bot_id,
        "type": message_type,
    }
    if isinstance(data, RcsTextPayload):
        body["text"] = data.text
    elif isinstance(data, RcsMediaPayload):
        body["media_url"] = data.media_url
        if data.caption is not None:
            body["caption"] = data.caption
        if isinstance(data, RcsDocumentPayload) and data.file_name is not None:
            body["file_name"] = data.file_name
    elif isinstance(data, RcsTemplatePayload):
        body["template_name"] = data.template_name
        if data.variables is not None:
            body["variables"] = data.variables
    return body
