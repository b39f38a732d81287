"""Where a download may be redirected: the SSRF guard.

Rules: a redirect must stay on ``http``/``https`` and never downgrade from
``https`` to ``http``; a redirect to another host is refused when that host is
(or resolves to) a loopback, link-local, private or otherwise non-public
address — unless the URL the user asked for was itself such an address (a
model server on the local network may redirect within it).  A host name that
does not resolve is treated as public: it cannot reach anything here, and a
configured proxy resolves it on its own side.

Whatever the first URL was, a redirect is never followed to a link-local
address (169.254.0.0/16, fe80::/10) or a cloud metadata endpoint
(169.254.169.254, fd00:ec2::254, 100.100.100.200, ``metadata.google.internal``
and other metadata host names, or a name resolving to any of these): the check
happens before the redirect's request is sent.
"""

from __future__ import annotations

import ipaddress
import socket
import urllib.request
from collections.abc import Callable, Sequence
from urllib.parse import urlsplit

from ..errors import RedirectRefusedError

__all__ = [
    "Resolver",
    "address_is_internal",
    "address_is_metadata",
    "check_redirect",
    "host_is_metadata",
    "host_is_internal",
    "same_origin",
    "uses_proxy",
]

Resolver = Callable[[str], Sequence[str]]
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def _system_resolver(host: str) -> Sequence[str]:
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return ()
    return [str(info[4][0]) for info in infos]


def address_is_internal(address: str | IPAddress) -> bool:
    """True for loopback, link-local, private, multicast, reserved and unspecified addresses."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0] if isinstance(address, str) else address)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address):
        mapped = ip.ipv4_mapped or ip.sixtofour
        if mapped is not None:
            ip = mapped
    return not ip.is_global or ip.is_loopback or ip.is_link_local or ip.is_private or ip.is_multicast


_METADATA_ADDRESSES = frozenset({
    ipaddress.ip_address("169.254.169.254"),  # AWS, GCP, Azure, OpenStack, ...
    ipaddress.ip_address("fd00:ec2::254"),  # AWS over IPv6
    ipaddress.ip_address("100.100.100.200"),  # Alibaba Cloud
})
_METADATA_NAMES = frozenset({"metadata.google.internal", "metadata.goog", "metadata", "instance-data",
                             "instance-data.ec2.internal"})


def address_is_metadata(address: str | IPAddress) -> bool:
    """True for link-local addresses (169.254.0.0/16, fe80::/10) and known cloud metadata addresses."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0] if isinstance(address, str) else address)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_link_local or ip in _METADATA_ADDRESSES


def _host_is(host: str, address_test: Callable[[IPAddress], bool], names: Callable[[str], bool],
             resolve: Resolver | None) -> bool:
    """``address_test`` of an IP literal, else ``names`` of the name, else of what it resolves to."""
    host = host.strip("[]").rstrip(".").lower()
    if not host:
        return False
    try:
        return address_test(ipaddress.ip_address(host.split("%", 1)[0]))
    except ValueError:
        pass
    if names(host):
        return True
    return any(address_test(a) for a in (resolve or _system_resolver)(host))


def host_is_metadata(host: str, resolve: Resolver | None = None) -> bool:
    """Whether ``host`` is, is named like or resolves to a link-local or cloud metadata address."""
    return _host_is(host, address_is_metadata, lambda name: name in _METADATA_NAMES, resolve)


def host_is_internal(host: str, resolve: Resolver | None = None) -> bool:
    """Whether ``host`` (an IP literal or a name) is or resolves to an internal address."""
    return _host_is(host, address_is_internal, lambda name: name == "localhost" or name.endswith(".localhost"),
                    resolve)


def same_origin(a: str, b: str) -> bool:
    pa, pb = urlsplit(a), urlsplit(b)
    return (pa.scheme, pa.hostname, pa.port) == (pb.scheme, pb.hostname, pb.port)


def uses_proxy(url: str) -> bool:
    """Whether httpx (trusting the environment) sends ``url`` through a proxy."""
    parts = urlsplit(url)
    proxies = urllib.request.getproxies_environment()
    if not (proxies.get(parts.scheme) or proxies.get("all")):
        return False
    return not urllib.request.proxy_bypass_environment(parts.hostname or "", proxies)


def check_redirect(current: str, target: str, *, origin_internal: bool, resolve: Resolver | None = None) -> None:
    """Raise :class:`RedirectRefusedError` unless a redirect from ``current`` to ``target`` may be followed.

    ``origin_internal`` tells whether the URL the user asked for was an
    internal address (then redirects may go anywhere on ``http(s)``).
    """
    cur, tgt = urlsplit(current), urlsplit(target)
    if tgt.scheme not in ("http", "https") or not tgt.hostname:
        raise RedirectRefusedError(f"refused redirect from {current} to {target[:200]}: not an http(s) URL")
    if cur.scheme == "https" and tgt.scheme == "http":
        raise RedirectRefusedError(f"refused redirect from {current} to {target[:200]}: https downgraded to http")
    if host_is_metadata(tgt.hostname, resolve):
        raise RedirectRefusedError(
            f"refused redirect from {current} to {target[:200]}: it points to a link-local or cloud metadata "
            "address, which no download may be sent to (whatever the first URL was)"
        )
    if origin_internal or (cur.hostname or "").lower() == tgt.hostname.lower():
        return
    if host_is_internal(tgt.hostname, resolve):
        raise RedirectRefusedError(
            f"refused redirect from {current} to {target[:200]}: it points to a loopback, link-local or "
            "private address, which a public server may not send a download to"
        )
