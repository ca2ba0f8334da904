"""Where a webhook may send: only http(s) to public addresses (SSRF guard), and the one
request of a delivery, pinned to the address that was checked.

A URL is refused when any address its host resolves to is loopback, private (RFC 1918,
unique-local fc00::/7), link-local (which holds the cloud metadata endpoints
169.254.169.254 and fd00:ec2::254), shared (100.64.0.0/10), multicast, unspecified or
reserved, including the IPv4 forms hidden in IPv6 (::ffff:a.b.c.d, 6to4, NAT64
64:ff9b::/96), unless `DOCSTORE_WEBHOOK_ALLOW_PRIVATE` is set. The check runs when a
webhook is saved and again for every delivery, and the delivery connects to the very
address it checked (the Host header and TLS name stay the URL's): a name that re-resolves
to 127.0.0.1 between the check and the connection (DNS rebinding) gains nothing.
Redirects are never followed; a delivery has a time limit and reads at most a capped
number of response bytes.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_SHARED = ipaddress.ip_network("100.64.0.0/10")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_METADATA = {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")}


class Refused(ValueError):
    """The URL may not be delivered to; the message says why (shown to the owner)."""


def embedded_ipv4(ip: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (mapped, 6to4, NAT64), if any."""
    if isinstance(ip, ipaddress.IPv4Address):
        return None
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def forbidden_reason(ip: IPAddress) -> str | None:
    """Why a delivery may not go to `ip` (None: a public address)."""
    inner = embedded_ipv4(ip)
    if inner is not None:
        reason = forbidden_reason(inner)
        return f"{reason} (inside {ip})" if reason else None
    checks = (
        (ip in _METADATA, "a cloud metadata address"),
        (ip.is_loopback, "a loopback address"),
        (ip.is_link_local, "a link-local address"),
        (ip.is_multicast, "a multicast address"),
        (ip.is_unspecified, "an unspecified address"),
        (isinstance(ip, ipaddress.IPv4Address) and ip in _SHARED, "a shared (CGNAT) address"),
        (ip.is_private, "a private address"),
        (ip.is_reserved, "a reserved address"),
        (isinstance(ip, ipaddress.IPv6Address) and ip.is_site_local, "a site-local address"),
        (not ip.is_global, "not a public address"),
    )
    return next((why for hit, why in checks if hit), None)


@dataclass(frozen=True)
class Target:
    """A checked URL: where to connect (`address`) and what to call it (`host`)."""

    url: str
    scheme: str
    host: str
    port: int
    path: str  # path and query, as sent
    address: str
    # The other checked addresses of the name, tried in turn when `address` refuses the
    # connection (an IPv6 address first on a host without IPv6, a server down).
    fallbacks: tuple[str, ...] = ()


def parse(url: str) -> tuple[str, str, int, str]:
    """Scheme, host, port and path-with-query of an acceptable webhook URL, or Refused."""
    if len(url) > 2000:
        raise Refused("The URL is longer than 2000 characters.")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise Refused(f"The URL is not valid: {exc}.") from exc
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise Refused("Only http:// and https:// URLs can receive webhooks.")
    if not parts.hostname:
        raise Refused("The URL has no host.")
    if parts.username is not None or parts.password is not None:
        raise Refused("The URL may not carry a user name or password.")
    if parts.fragment:
        raise Refused("The URL may not have a #fragment.")
    if any(ord(c) < 0x21 or ord(c) == 0x7F for c in url):
        raise Refused("The URL may not contain spaces or control characters.")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return scheme, parts.hostname, port or (443 if scheme == "https" else 80), path


def resolve(host: str, port: int) -> list[IPAddress]:
    """Every address `host` resolves to (a literal resolves to itself), or Refused."""
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise Refused(f"The host {host} does not resolve ({exc}).") from exc
    found: list[IPAddress] = []
    for info in infos:
        ip = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        if ip not in found:
            found.append(ip)
    if not found:
        raise Refused(f"The host {host} does not resolve.")
    return found


def check(url: str, *, allow_private: bool) -> Target:
    """The URL's target, pinned to the addresses it resolves to now (the first, then the
    others); Refused when the URL or any of those addresses is not allowed."""
    scheme, host, port, path = parse(url)
    addresses = resolve(host, port)
    if not allow_private:
        for ip in addresses:
            reason = forbidden_reason(ip)
            if reason:
                raise Refused(f"The host {host} resolves to {ip}, {reason}.")
    first, *others = (str(ip) for ip in addresses)
    return Target(url, scheme, host, port, path, first, tuple(others))


@dataclass(frozen=True)
class Outcome:
    """How one POST went: a status code (None when none came back) or an error."""

    status: int | None
    error: str | None
    latency_ms: int

    @property
    def ok(self) -> bool:
        """Whether the receiver acknowledged it (any 2xx)."""
        return self.status is not None and 200 <= self.status < 300


def post(
    target: Target,
    body: bytes,
    headers: dict[str, str],
    *,
    timeout: float,
    max_response_bytes: int,
) -> Outcome:
    """POST `body` to the checked addresses of `target` (the next only when one refuses the
    connection): no redirects, no proxies from the environment, at most about `timeout`
    seconds per address, at most `max_response_bytes` read."""
    started = time.monotonic()
    for address in (target.address, *target.fallbacks):
        try:
            status = _post_to(address, target, body, headers, timeout, max_response_bytes)
        except httpx.ConnectError as exc:
            error: httpx.HTTPError = exc
            continue
        except httpx.HTTPError as exc:
            error = exc
            break
        return _outcome(status, int((time.monotonic() - started) * 1000))
    latency = int((time.monotonic() - started) * 1000)
    return Outcome(None, f"{type(error).__name__}: {error}"[:500], latency)


def _post_to(
    address: str,
    target: Target,
    body: bytes,
    headers: dict[str, str],
    timeout: float,
    max_response_bytes: int,
) -> int:
    """One POST to `address` under `target`'s name; the response's status."""
    literal = f"[{address}]" if ":" in address else address
    pinned = f"{target.scheme}://{literal}:{target.port}{target.path}"
    default_port = 443 if target.scheme == "https" else 80
    host_header = target.host if ":" not in target.host else f"[{target.host}]"
    if target.port != default_port:
        host_header += f":{target.port}"
    # TLS: the name is sent (SNI) and the certificate checked against it, not the address.
    extensions = {"sni_hostname": target.host} if target.scheme == "https" else {}
    deadline = time.monotonic() + timeout
    with (
        httpx.Client(
            timeout=httpx.Timeout(timeout), follow_redirects=False, trust_env=False
        ) as client,
        client.stream(
            "POST",
            pinned,
            content=body,
            headers={**headers, "Host": host_header},
            extensions=extensions,
        ) as response,
    ):
        read = 0
        for chunk in response.iter_raw():
            read += len(chunk)
            if read >= max_response_bytes or time.monotonic() > deadline:
                break
        return response.status_code


def _outcome(status: int, latency_ms: int) -> Outcome:
    if 300 <= status < 400:
        return Outcome(status, "Redirects are not followed.", latency_ms)
    if not 200 <= status < 300:
        return Outcome(status, f"HTTP {status}", latency_ms)
    return Outcome(status, None, latency_ms)
