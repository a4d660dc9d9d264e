"""What a caller's app imports to send flows: the request model and the client."""

from otpflow.flow.models import FieldError, FlowRequest, InvalidRequest
from otpflow.flow.store import FlowView, StepView
from otpflow.producers.client import Conflict, OtpflowClient, RateLimited, ServiceUnavailable

__all__ = [
    "Conflict",
    "FieldError",
    "FlowRequest",
    "FlowView",
    "InvalidRequest",
    "OtpflowClient",
    "RateLimited",
    "ServiceUnavailable",
    "StepView",
]
