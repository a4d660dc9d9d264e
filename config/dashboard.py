"""The support dashboard's settings (``OTPFLOW_DASHBOARD__*``): who may sign in, and for how
long a session lasts. What the dashboard does: otpflow.api.dashboard."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field, field_validator
from pydantic_settings import NoDecode

from otpflow.config.values import split_csv

Role = Literal["admin", "support"]
ROLES: tuple[Role, ...] = ("admin", "support")


class DashboardUser(BaseModel):
    """One dashboard user of one workspace; ``password`` is a hash (``otpflow dashboard-user``
    makes one), never the password."""

    workspace: str
    name: str
    role: Role
    password: str

    @classmethod
    def parse(cls, entry: str) -> DashboardUser:
        workspace, name, role, password = [*entry.split(":", 3), "", "", ""][:4]
        if not (workspace and name and password.startswith("scrypt$")):
            raise ValueError(
                "a dashboard user is workspace:name:role:scrypt$... (otpflow dashboard-user "
                "prints one)"
            )
        return cls(workspace=workspace, name=name, role=role, password=password)  # type: ignore[arg-type]

    def entry(self) -> str:
        return f"{self.workspace}:{self.name}:{self.role}:{self.password}"


class DashboardSettings(BaseModel):
    """Sign-in to ``/dashboard`` (README, Dashboard)."""

    model_config = {"extra": "forbid"}

    users: Annotated[list[DashboardUser], NoDecode] = Field(
        default_factory=list,
        description="dashboard users, comma separated workspace:name:role:hash entries "
        "(role admin or support; otpflow dashboard-user prints one); a workspace's API key "
        "signs in as its admin too",
    )
    session_seconds: int = Field(
        default=8 * 3600, ge=60, le=7 * 24 * 3600, description="how long a sign-in lasts"
    )

    @field_validator("users", mode="before")
    @classmethod
    def _parse_users(cls, value: object) -> object:
        items = split_csv(value)
        if isinstance(items, list):
            return [DashboardUser.parse(i) if isinstance(i, str) else i for i in items]
        return items

    def user(self, workspace: str, name: str) -> DashboardUser | None:
        for user in self.users:
            if (user.workspace, user.name) == (workspace, name):
                return user
        return None
