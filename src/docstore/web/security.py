"""Security headers on every response: a CSP with no inline scripts, no framing, no sniffing."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from docstore.config import Settings


def _origin(url: str) -> str | None:
    parts = urlsplit(url)
    if parts.scheme in ("http", "https") and parts.netloc:
        return f"{parts.scheme}://{parts.netloc}"
    return None


def storage_origins(settings: Settings) -> list[str]:
    """Origins the browser talks to besides this one: signed part PUTs and downloads."""
    origins: list[str] = []
    public = _origin(settings.resolved_public_url)
    if public:
        origins.append(public)
    url = settings.resolved_storage_url
    if url.startswith("s3://"):
        endpoint = parse_qs(urlsplit(url).query).get("endpoint_url", [""])[0]
        origin = _origin(endpoint) if endpoint else "https://*.amazonaws.com"
        if origin:
            origins.append(origin)
    return origins


def content_security_policy(settings: Settings) -> str:
    """Scripts, styles and workers only from this origin; bytes also from storage."""
    extra = " ".join(storage_origins(settings))
    return "; ".join(
        [
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self'",
            "worker-src 'self'",
            f"img-src 'self' data: blob: {extra}".strip(),
            f"media-src 'self' blob: {extra}".strip(),
            f"connect-src 'self' {extra}".strip(),
            "frame-src 'self' blob:",
            "object-src 'none'",
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        ]
    )


class SecurityHeaders:
    """Pure ASGI middleware (it never buffers request or response bodies)."""

    def __init__(self, app: ASGIApp, settings: Settings, skip_csp_prefixes: tuple[str, ...] = ()):
        self.app = app
        self.csp = content_security_policy(settings)
        # FastAPI's Swagger page loads its script from a CDN and runs an inline one.
        self.skip_csp_prefixes = skip_csp_prefixes
        # Encoded once (every response gets them): a response that set one itself keeps
        # its own (the storage's "sandbox" CSP).
        self.fixed = [
            (b"x-content-type-options", b"nosniff"),
            (b"x-frame-options", b"DENY"),
            (b"referrer-policy", b"no-referrer"),
            (b"cross-origin-opener-policy", b"same-origin"),
        ]
        self.csp_header = (b"content-security-policy", self.csp.encode("latin-1"))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        wanted = self.fixed
        if not str(scope.get("path", "")).startswith(self.skip_csp_prefixes):
            wanted = [self.csp_header, *wanted]

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                raw = list(message.get("headers", ()))
                present = {name.lower() for name, _ in raw}
                raw += [pair for pair in wanted if pair[0] not in present]
                message["headers"] = raw
            await send(message)

        await self.app(scope, receive, send_with_headers)
