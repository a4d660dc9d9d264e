"""Keys derived from ``OTPFLOW_SECRET``, one per purpose, and what the store makes with them.

``OTPFLOW_SECRET`` is never a key itself: each purpose gets its own, derived with HMAC-SHA256
under a label (:func:`derive_key`), so a key handed out or leaked for one purpose opens no
other (the DLR tokens and webhook signatures in ``flow.signing`` derive theirs the same way).

The store uses two:

- **recipients**: per-recipient Redis key names (limits, running-flow markers) carry an HMAC
  of the phone number or address, not a plain hash that anyone can reverse by enumerating
  numbers;
- **codes**: a flow's code is made from its id with this key, so no code is ever stored; Redis
  keeps only an HMAC of it, to check what a person types, for as long as it may be used.
  Rotating the secret therefore ends the codes of flows in flight (they were made with the
  old one); flows started after it are unaffected.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass


class KeyringMismatch(RuntimeError):
    """A flow was stored by a process whose ``OTPFLOW_SECRET`` differs from this one's (or
    before a rotation): its code cannot be made or checked here. Every OTPflow process, the
    producers in your web app included, must share one secret."""


RECIPIENTS_PURPOSE = "recipient-keys"
CODES_PURPOSE = "codes"


def derive_key(secret: str, purpose: str) -> bytes:
    """The key of one purpose, derived from ``OTPFLOW_SECRET`` (HMAC-SHA256 under a label)."""
    return hmac.new(secret.encode(), f"otpflow/{purpose}/v1".encode(), hashlib.sha256).digest()


@dataclass(frozen=True)
class Keyring:
    recipients: bytes
    codes: bytes

    @classmethod
    def from_secret(cls, secret: str) -> Keyring:
        return cls(derive_key(secret, RECIPIENTS_PURPOSE), derive_key(secret, CODES_PURPOSE))

    def recipient_id(self, address: str) -> str:
        """What names a recipient in Redis keys: an HMAC of its (normalised) address."""
        return hmac.new(self.recipients, address.encode(), hashlib.sha256).hexdigest()[:32]

    def code(self, flow_id: str, length: int) -> str:
        """The flow's code: ``length`` digits, unpredictable without the key (the bias of
        reducing 256 bits modulo 10**length is below 10**-66)."""
        digest = hmac.new(self.codes, f"code:{flow_id}".encode(), hashlib.sha256).digest()
        return str(int.from_bytes(digest, "big") % 10**length).zfill(length)

    @property
    def fingerprint(self) -> str:
        """Names these keys without giving them away: a flow keeps the fingerprint it was
        stored with, so a process with another ``OTPFLOW_SECRET`` says so instead of sending
        or checking a wrong code."""
        return hmac.new(self.codes, b"fingerprint", hashlib.sha256).hexdigest()[:12]

    def code_check(self, flow_id: str, code: str) -> str:
        """What Redis keeps to check a typed code against: an HMAC, never the code."""
        message = f"check:{flow_id}:{code}".encode()
        return hmac.new(self.codes, message, hashlib.sha256).hexdigest()
