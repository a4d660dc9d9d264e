"""What a route receives besides its request: the process's services, the caller's workspace
(from its key) and a valid request id. Each is a FastAPI dependency, declared once here."""

from __future__ import annotations

import hmac
import uuid
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Header, Path, Request

from otpflow.api.dlr import DlrIntake
from otpflow.api.errors import ApiError, invalid_field
from otpflow.config.settings import Settings
from otpflow.flow.metrics import Metrics
from otpflow.producers.client import OtpflowClient


@dataclass(frozen=True)
class Services:
    """One API process's clients, built once by ``create_app`` and kept on ``app.state``."""

    settings: Settings
    otp: OtpflowClient
    intake: DlrIntake
    metrics: Metrics
    api_keys: dict[str, str]


async def services(request: Request) -> Services:
    found: Services = request.app.state.services
    return found


Api = Annotated[Services, Depends(services)]


async def authenticated(
    api: Api,
    x_api_key: Annotated[str | None, Header()] = None,
    x_workspace_id: Annotated[str | None, Header()] = None,
) -> str:
    """The caller's workspace, if its key matches (compared in constant time); else 401."""
    expected = api.api_keys.get(x_workspace_id or "")
    if (
        not x_api_key
        or not x_workspace_id
        or expected is None
        or not hmac.compare_digest(expected.encode(), x_api_key.encode())
    ):
        raise ApiError(401, "missing or wrong x-api-key / x-workspace-id")
    return x_workspace_id


Workspace = Annotated[str, Depends(authenticated)]


async def valid_request_id(
    request_id: Annotated[str, Path(description="the request_id POST /v1/otpflow answered")],
) -> str:
    """The path's request id as flows are keyed (``str(uuid4())``); anything that is not a
    UUID names no flow and is refused here, never looked up."""
    try:
        return str(uuid.UUID(request_id))
    except ValueError as exc:
        raise invalid_field("request_id", "must be a UUID, as POST /v1/otpflow answered") from exc


RequestId = Annotated[str, Depends(valid_request_id)]
