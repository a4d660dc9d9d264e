"""A JSON API for one-time codes in Flask: send by SMS, fall back to WhatsApp, verify the code.

    OTPFLOW_REDIS_URL=redis://127.0.0.1:6379/0 flask --app examples/flask_app/app.py run

POST /otp {"phone": "919876543210", "name": "Asha"} -> 202 {"request_id": ...}
GET /otp/<request_id> -> the flow's status and steps
POST /otp/<request_id>/verify {"code": "482913"} -> 200 verified | 400 wrong | 423 | 410 | 409
"""

from __future__ import annotations

from typing import Any

from flask import Flask, request

from otpflow.producers import PRODUCER_ERRORS, verify_reply
from otpflow.producers.flask import OTPflow, error_response

WORKSPACE = "default"
SENDER_ID = "ACME"

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


def create_app(config: dict[str, Any] | None = None) -> Flask:
    app = Flask(__name__)
    app.config.update(config or {})
    otpflow.init_app(app)

    for error in PRODUCER_ERRORS:  # a bad flow or code, a limit, Redis down: one JSON shape
        app.register_error_handler(error, error_response)

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
        if otpflow.status(request_id, workspace=WORKSPACE) is None:
            return {"message": "no such flow"}, 404
        # a code that is no code is InvalidRequest (400 naming "code"), costing no attempt
        return verify_reply(otpflow.verify(request_id, _body().get("code")))

    return app
