"""A JSON API for one-time codes: send by SMS, fall back to WhatsApp, verify what was typed."""

import json

from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from otpflow.producers import PRODUCER_ERRORS, ServiceUnavailable, verify_reply
from otpflow.producers import django as otpflow

WORKSPACE = "default"
SENDER_ID = "ACME"


def _body(request: HttpRequest) -> dict:
    try:
        body = json.loads(request.body or b"{}")
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def otp_flow(phone: str) -> dict:
    """SMS first; WhatsApp if the SMS is not delivered in time. OTPflow makes the code."""
    return {
        "messages": [
            {
                "channel": "sms",
                "timeout": 30,
                "messageType": "",
                "data": {
                    "recipient": phone,
                    "message": "Your code is {{code}}",
                    "sender_id": SENDER_ID,
                    "route": "otp",
                },
            },
            {
                "channel": "whatsapp",
                "timeout": 60,
                "messageType": "custom",
                "data": {
                    "recipient": phone,
                    "phone_id": "phone-1",
                    "text": "Your code is {{code}}",
                },
            },
        ],
        "otp": {"length": 6, "ttl": 300, "max_attempts": 5},
    }


@csrf_exempt
@require_POST
def start(request: HttpRequest) -> JsonResponse:
    phone = _body(request).get("phone")
    try:
        request_id = otpflow.send_otp(otp_flow(phone), workspace=WORKSPACE)
    except PRODUCER_ERRORS as exc:
        return otpflow.error_response(exc)
    return JsonResponse({"request_id": request_id}, status=202)


@require_GET
def status(request: HttpRequest, request_id: str) -> JsonResponse:
    try:
        view = otpflow.flow_status(request_id, workspace=WORKSPACE)
    except ServiceUnavailable as exc:
        return otpflow.error_response(exc)
    if view is None:
        return JsonResponse({"message": "no such flow"}, status=404)
    return JsonResponse(
        {
            "request_id": view.flow_id,
            "status": view.status,
            "current_step": view.current,
            "steps": [
                {"index": s.index, "channel": s.channel, "status": s.status, "dlr": s.dlr}
                for s in view.steps
            ],
        }
    )


@csrf_exempt
@require_POST
def verify(request: HttpRequest, request_id: str) -> JsonResponse:
    try:
        if otpflow.flow_status(request_id, workspace=WORKSPACE) is None:
            return JsonResponse({"message": "no such flow"}, status=404)
        # a code that is no code is InvalidRequest (400 naming "code"), costing no attempt
        outcome = otpflow.verify(request_id, _body(request).get("code"))
    except PRODUCER_ERRORS as exc:
        return otpflow.error_response(exc)
    body, status_code = verify_reply(outcome)
    return JsonResponse(body, status=status_code)
