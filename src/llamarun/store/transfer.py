"""HTTP with httpx for the store: redirect-checked requests, retries with backoff, bounded small reads."""

from __future__ import annotations

import contextlib
import email.utils
import logging
import random
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urljoin, urlsplit

from ..errors import DownloadError, RedirectRefusedError
from .netpolicy import (
    address_is_internal, address_is_metadata, check_redirect, host_is_internal, host_is_metadata, same_origin,
    uses_proxy,
)

__all__ = [
    "CONTENT_RANGE",
    "TransferPolicy",
    "TransientError",
    "check_peer",
    "fetch_bytes",
    "open_client",
    "raise_for_status",
    "send_checked",
    "with_retries",
]

logger = logging.getLogger(__name__)

_TRANSIENT_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
_REDIRECT_STATUS = frozenset({301, 302, 303, 307, 308})
CONTENT_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+|\*)$")
T = TypeVar("T")


@dataclass(frozen=True)
class TransferPolicy:
    """How downloads behave; the defaults suit multi-gigabyte models on ordinary links."""

    retries: int = 5  # consecutive attempts without progress before giving up
    backoff: float = 0.5  # first retry delay in seconds, doubled per failure
    backoff_max: float = 15.0
    connect_timeout: float = 15.0
    read_timeout: float = 60.0
    max_redirects: int = 10
    chunk_size: int = 1 << 20
    max_bytes: int | None = None  # cap for a body of unknown size (None: the free disk space)
    max_document_bytes: int = 4 << 20  # manifests and other small documents
    reserve_bytes: int = 0  # free space to leave on the disk
    user_agent: str = "llamarun"


class TransientError(Exception):
    """A failure worth retrying (connection trouble, 5xx, 429)."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def open_client(policy: TransferPolicy) -> Any:
    """An ``httpx.Client`` that never follows redirects by itself (we check each one)."""
    import httpx  # deferred

    timeout = httpx.Timeout(policy.read_timeout, connect=policy.connect_timeout)
    return httpx.Client(timeout=timeout, follow_redirects=False, trust_env=True,
                        headers={"User-Agent": policy.user_agent})


def check_peer(response: Any, url: str, origin_internal: bool) -> None:
    """Refuse a public name that connected to an internal address (DNS rebinding), and any URL
    that connected to a link-local or metadata address whatever the first URL was."""
    if uses_proxy(url):
        return
    stream = response.extensions.get("network_stream")
    peer = stream.get_extra_info("server_addr") if stream is not None else None
    if peer and address_is_metadata(str(peer[0])):
        response.close()
        raise RedirectRefusedError(f"refused {url}: it connected to the link-local or metadata address {peer[0]}")
    if origin_internal:
        return
    if peer and address_is_internal(str(peer[0])):
        response.close()
        raise RedirectRefusedError(f"refused {url}: it connected to the internal address {peer[0]}")


def _retry_after(response: Any) -> float | None:
    value = response.headers.get("Retry-After")
    if not value:
        return None
    if value.strip().isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def send_checked(client: Any, url: str, headers: Mapping[str, str], policy: TransferPolicy,
                 origin_internal: bool) -> Any:
    """GET ``url`` (streaming), following only the redirects the policy allows."""
    import httpx

    if host_is_metadata(urlsplit(url).hostname or ""):  # before anything is sent, proxy or not
        raise RedirectRefusedError(f"refused {url[:200]}: it is a link-local or cloud metadata address, "
                                   "and models are never downloaded from one")
    current, hdrs = url, dict(headers)
    for _ in range(policy.max_redirects + 1):
        try:
            response = client.send(client.build_request("GET", current, headers=hdrs), stream=True)
        except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
            raise DownloadError(f"cannot download {current}: {exc}") from None
        except httpx.TransportError as exc:
            raise TransientError(f"{type(exc).__name__} for {current}: {exc}") from None
        check_peer(response, current, origin_internal)
        location = response.headers.get("Location")
        if response.status_code not in _REDIRECT_STATUS or not location:
            return response
        response.close()
        target = urljoin(current, location)
        check_redirect(current, target, origin_internal=origin_internal)
        if not same_origin(current, target):
            hdrs.pop("Authorization", None)
        logger.debug("following redirect %s -> %s", current, target)
        current = target
    raise DownloadError(f"too many redirects (more than {policy.max_redirects}) for {url}")


def with_retries(policy: TransferPolicy, what: str, attempt: Callable[[], T],
                  progressed: Callable[[], bool] = lambda: False,
                  on_retry: Callable[[str, float], None] | None = None) -> T:
    failures = attempts = 0
    while True:
        attempts += 1
        try:
            return attempt()
        except TransientError as exc:
            failures = 1 if progressed() else failures + 1
            if failures > policy.retries:
                raise DownloadError(f"{what} failed after {attempts} attempts ({failures} in a row without "
                                    f"progress): {exc}") from None
            delay = min(policy.backoff * 2 ** (failures - 1), policy.backoff_max)
            delay = exc.retry_after if exc.retry_after is not None else delay * (0.5 + random.random() / 2)
            delay = min(delay, policy.backoff_max)
            # one report per retry: the caller's progress event when it has one, else the log's warning
            logger.log(logging.INFO if on_retry is not None else logging.WARNING,
                       "%s: %s; retrying in %.1fs", what, exc, delay)
            if on_retry is not None:
                on_retry(str(exc), delay)
            time.sleep(delay)


def raise_for_status(response: Any, url: str) -> None:
    status = response.status_code
    if status in _TRANSIENT_STATUS:
        raise TransientError(f"HTTP {status} from {url}", _retry_after(response))
    if status == 404:
        raise DownloadError(f"{url} was not found (HTTP 404)")
    if status in (401, 403):
        raise DownloadError(f"{url} refused access (HTTP {status}); check the token or the URL")
    if status >= 300:
        raise DownloadError(f"{url} answered HTTP {status}")


def fetch_bytes(url: str, *, policy: TransferPolicy, headers: Mapping[str, str] | None = None,
                limit: int | None = None) -> bytes:
    """GET a small document (a manifest) with retries, reading at most ``limit`` bytes."""
    limit = policy.max_document_bytes if limit is None else limit
    origin_internal = host_is_internal(urlsplit(url).hostname or "")
    req_headers = {"Accept-Encoding": "identity", **(headers or {})}

    def attempt() -> bytes:
        import httpx

        with open_client(policy) as client, contextlib.closing(
                send_checked(client, url, req_headers, policy, origin_internal)) as response:
            raise_for_status(response, url)
            body = bytearray()
            try:
                for chunk in response.iter_raw():
                    body += chunk
                    if len(body) > limit:
                        raise DownloadError(f"{url} sent more than {limit} bytes for a small document")
            except httpx.TransportError as exc:
                raise TransientError(f"{type(exc).__name__} reading {url}: {exc}") from None
            return bytes(body)

    return with_retries(policy, f"GET {url}", attempt)
