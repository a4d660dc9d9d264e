"""One exception tree for every provider, split by whether trying again can help::

    ProviderError
    ├── TransientProviderError      the message did not get through; a retry may
    │   ├── ProviderUnavailable     connection refused, connect timeout, 5xx
    │   └── ProviderRateLimited     429, with the provider's Retry-After
    ├── PermanentProviderError      a retry will get the same answer
    │   ├── ProviderAuthError       401/403: our credentials are wrong
    │   └── ProviderRejected        the provider refused this message (4xx, success=false)
    └── AmbiguousSend               the request left us but no answer came back (read timeout,
        │                           dropped connection): the provider may have the message,
        │                           so the step is never sent again (at most once per step)
        └── ProviderBadReply        a 2xx we cannot read (not JSON, another shape, no message
                                    id): the provider said yes at the HTTP level, so it may
                                    have the message just the same

    InvalidDlr                      a delivery report we cannot read (answered 400)

Adapters translate httpx errors and provider replies into these once, at the boundary.
Messages never carry a recipient or text: provider wording passes through ``mask``.
"""

from __future__ import annotations


class ProviderError(Exception):
    """Sending one step through one provider failed."""

    # the ``result`` label of the provider_sends metric
    kind = "error"

    def __init__(self, provider: str, reason: str) -> None:
        self.provider = provider
        self.reason = reason
        super().__init__(f"{provider}: {reason}")


class TransientProviderError(ProviderError):
    """The message did not get through this time; a retry may."""

    retry_after: float | None = None


class ProviderUnavailable(TransientProviderError):
    kind = "unavailable"


class ProviderRateLimited(TransientProviderError):
    kind = "rate_limited"

    def __init__(self, provider: str, reason: str, retry_after: float | None) -> None:
        super().__init__(provider, reason)
        self.retry_after = retry_after


class PermanentProviderError(ProviderError):
    """The provider will give the same answer again: do not retry this provider."""


class ProviderAuthError(PermanentProviderError):
    kind = "auth_error"


class ProviderRejected(PermanentProviderError):
    kind = "rejected"


class AmbiguousSend(ProviderError):
    """The provider may have accepted the message: it must not be sent again."""

    kind = "ambiguous"


class ProviderBadReply(AmbiguousSend):
    """A success status with a body we cannot read: ambiguous, never a reason to fail over
    (a Zixflow 200 with an HTML page had sent the SMS; MessageFlow then sent it again)."""

    kind = "bad_reply"


class InvalidDlr(ValueError):
    """A delivery report that cannot be parsed."""
