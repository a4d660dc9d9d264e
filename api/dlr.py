"""DLR intake: authenticate a provider's delivery report, normalise it, apply it to the flow."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from otpflow.flow.contract import Tasks
from otpflow.flow.outcomes import Outcome
from otpflow.flow.signing import BadToken, read_dlr_token
from otpflow.flow.store import FlowStore
from otpflow.providers.base import Provider
from otpflow.providers.errors import InvalidDlr


class UnknownProvider(LookupError):
    pass


class DlrIntake:
    def __init__(
        self,
        store: FlowStore,
        providers: Mapping[str, Provider],
        secrets: str | Sequence[str],
        tasks: Tasks,
    ) -> None:
        self._store = store
        self._providers = providers
        # the current secret and those still accepted while it rotates (callbacks handed to
        # providers before the rotation)
        self._secrets = secrets
        self._tasks = tasks

    def receive(self, provider_name: str, token: str | None, body: Any) -> Outcome:
        """Apply one callback's reports; UnknownProvider, InvalidDlr or BadToken change
        nothing. Returns the outcome of the last report."""
        provider = self._providers.get(provider_name)
        if provider is None:
            raise UnknownProvider(provider_name)
        reports = provider.parse_dlr(body)
        token = token or reports[0].token
        if not token:
            raise BadToken("the report carries no callback token")
        try:
            flow_id, step = read_dlr_token(self._secrets, provider_name, token)
        except BadToken:
            raise
        except ValueError as exc:
            # a step int() cannot read (thousands of digits, a superscript digit) is a
            # malformed token like any other, not a server error
            raise BadToken("malformed DLR token") from exc
        for number, report in enumerate(reports, 1):
            # the callback's raw body goes with its last report: kept in the same step for a
            # caller who gave its own post_back_url (every callback, duplicates too)
            outcome = self._store.record_dlr(
                flow_id,
                step,
                report.status,
                provider_name,
                report.message_id,
                raw=body if number == len(reports) else None,
                provider_status=report.provider_status,
            )
            # a failed report switched the flow (the next send), or a report ended it
            self._tasks.follow_up(outcome, flow_id, step)
        if outcome.kept is not None:
            self._tasks.relay_dlr(flow_id, step, outcome.kept)
        return outcome


__all__ = ["BadToken", "DlrIntake", "InvalidDlr", "UnknownProvider"]
