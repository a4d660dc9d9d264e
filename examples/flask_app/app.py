"""A JSON API for one-time codes in Flask: send by SMS, fall back to WhatsApp, verify the code.

    OTPFLOW_REDIS_URL=redis://127.0.0.1:6379/0 flask --app examples/flask_app/app.py run

POST /otp {"phone": "919876543210", "name": "Asha"} -> 202 {"request_id": ...}
GET /otp/<request_id> -> the flow's status and steps
POST /otp/<request_id>/verify {"code": "482913"} -> 200 verified | 400 wrong | 423 | 410 | 409
"""

from __future__ import annotations

from typing import Any

from flask import Flask, request

from otpflow.producers import Conflict, InvalidRequest, RateLimited, ServiceUnavailable
from otpflow.producers.flask import OTPflow, error_response

WORKSPACE = "default"
SENDER_ID = "ACME"
OTPFLOW_ERRORS = (InvalidRequest, RateLimited, Conflict, ServiceUnavailable)

otpflow = OTPflow()

Reply = tuple[dict[str, Any], int] | tuple[dict[str, Any], int, dict[str, str]]


def otp_flow(phone: Any, name: Any = None) -> dict[str, Any]:
    """SMS first; WhatsApp if the SMS is not delivered in time. OTPflow makes the code."""
    greeting = f"Hi {name}, your" if isinstance(name, str) and name.strip() else "Your"
    text = greeting + " ACME code is {{code}}"
    return {
        "messages": [
            {
                "channel": "sms",
                "timeout": 30,
                "messageType": "",
                "data": {
                    "recipient": phone,
                    "message": text,
                    "sender_id": SENDER_ID,
                    "route": "otp",
                },
            },
            {
                "channel": "whatsapp",
                "timeout": 60,
                "messageType": "custom",
                "data": {"recipient": phone, "phone_id": "phone-1", "text": text},
            },
        ],
        "otp": {"length": 6, "ttl": 300, "max_attempts": 5},
    }


def _body() -> dict[str, Any]:
    body = request.get_json(silent=True)
    return body if isinstance(body, dict) else {}


VERIFY_ANSWERS = {
    "locked": (423, "too many wrong codes: this flow is locked"),
    "expired": (410, "no code to check: it expired, or this flow has none"),
    "already_verified": (409, "the code was already verified"),
    "missing": (404, "no such flow"),
}


def create_app(config: dict[str, Any] | None = None) -> Flask:
    app = Flask(__name__)
    app.config.update(config or {})
    otpflow.init_app(app)

    @app.errorhandler(InvalidRequest)
    @app.errorhandler(RateLimited)
    @app.errorhandler(Conflict)
    @app.errorhandler(ServiceUnavailable)
    def otpflow_error(exc: Exception) -> Reply:
        return error_response(exc)

    @app.post("/otp")
    def start() -> Reply:
        body = _body()
        request_id = otpflow.send(otp_flow(body.get("phone"), body.get("name")), WORKSPACE)
        return {"request_id": request_id}, 202

    @app.get("/otp/<request_id>")
    def status(request_id: str) -> Reply:
        view = otpflow.status(request_id, workspace=WORKSPACE)
        if view is None:
            return {"message": "no such flow"}, 404
        steps = [
            {"index": s.index, "channel": s.channel, "status": s.status, "dlr": s.dlr}
            for s in view.steps
        ]
        return {
            "request_id": view.flow_id,
            "status": view.status,
            "current_step": view.current,
            "steps": steps,
        }, 200

    @app.post("/otp/<request_id>/verify")
    def verify(request_id: str) -> Reply:
        code = _body().get("code")
        if not isinstance(code, str) or not code.isdigit():
            return {"message": "code: a string of digits is required"}, 400
        if otpflow.status(request_id, workspace=WORKSPACE) is None:
            return {"message": "no such flow"}, 404
        outcome = otpflow.verify(request_id, code)
        if outcome.kind == "verified":
            return {"status": "verified"}, 200
        if outcome.kind == "wrong":
            return {"message": "wrong code", "attempts_left": int(outcome.detail)}, 400
        status_code, message = VERIFY_ANSWERS.get(
            outcome.kind, (409, f"cannot verify ({outcome.kind})")
        )
        return {"message": message}, status_code

    return app
