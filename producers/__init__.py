"""What a caller's app imports to send flows: the request model and the client."""

from otpflow.flow.models import FieldError, FlowRequest, InvalidRequest
from otpflow.flow.views import FlowView, StepView
from otpflow.producers.client import OtpflowClient
from otpflow.producers.errors import (
    PRODUCER_ERRORS,
    Conflict,
    FraudRefused,
    RateLimited,
    ServiceUnavailable,
    error_reply,
    verify_reply,
)

__all__ = [
    "PRODUCER_ERRORS",
    "Conflict",
    "FieldError",
    "FlowRequest",
    "FlowView",
    "FraudRefused",
    "InvalidRequest",
    "OtpflowClient",
    "RateLimited",
    "ServiceUnavailable",
    "StepView",
    "error_reply",
    "verify_reply",
]
