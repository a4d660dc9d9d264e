"""Which addresses OTPflow may call on a caller's behalf (webhooks, report relays).

One rule, used twice: at intake, a URL whose host is a private IP literal
(``http://169.254.169.254/``, ``http://[::ffff:10.0.0.1]/``) is refused with a 400 naming its
field (names are left to delivery: intake asks no DNS); at delivery, every address the host
resolves to is checked and the connection goes to exactly the address that was checked
(``otpflow.worker.webhooks``), so a host that answers a public address first and a private
one second cannot reach the inside.

Unless ``OTPFLOW_ALLOW_PRIVATE_WEBHOOKS`` is set (development and tests), an address must be
globally routable. NAT64 (``64:ff9b::/96``, ``64:ff9b:1::/48``) and 6to4 (``2002::/16``) are
refused outright: they carry an IPv4 address a gateway turns back into one, which may be private.
An IPv4-mapped IPv6 address is judged by the IPv4 address it carries.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Prefixes that embed an IPv4 address a translator forwards to; Python's is_global lets them
# through (3.11), yet 64:ff9b::7f00:1 is 127.0.0.1 behind a NAT64 gateway.
TRANSLATED_NETWORKS = (
    ipaddress.ip_network("64:ff9b::/96"),
    ipaddress.ip_network("64:ff9b:1::/48"),
    ipaddress.ip_network("2002::/16"),
)


class DestinationRefused(ValueError):
    """A URL or address OTPflow will not call."""


def is_forbidden(address: IPAddress) -> bool:
    """True for an address a caller's URL may not reach: not globally routable, multicast,
    or translated from an IPv4 address (NAT64, 6to4)."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        elif any(address in network for network in TRANSLATED_NETWORKS):
            return True
    return not address.is_global or address.is_multicast


def literal_address(host: str) -> IPAddress | None:
    """The IP address a URL host spells out (``[::1]`` or ``10.0.0.1``), or None for a name."""
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def obviously_private(url: str) -> bool:
    """True when the URL's host is an IP literal that is forbidden: known without DNS."""
    address = literal_address(urlsplit(url).hostname or "")
    return address is not None and is_forbidden(address)


def refuse_obviously_private(url: str) -> str:
    """``url`` itself, or DestinationRefused when it names a private destination."""
    if obviously_private(url):
        raise DestinationRefused(
            "must not point to a private, loopback or link-local address "
            "(set OTPFLOW_ALLOW_PRIVATE_WEBHOOKS for development)"
        )
    return url
