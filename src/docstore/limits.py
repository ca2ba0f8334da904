"""Limits every request body gets, whatever the endpoint: a JSON size limit and a timeout on
each read of the body, so a client that dribbles (or stalls) a body cannot hold a
connection and a worker for ever (slow-loris). And one rule for every API query string:
each parameter at most once (no API parameter is a list)."""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import parse_qsl

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from docstore.errors import BadRequest, TooLarge


def _is_json(content_type: bytes) -> bool:
    media = content_type.split(b";", 1)[0].strip().lower()
    return media == b"application/json" or media.endswith(b"+json")


class BodyLimits:
    """ASGI middleware: 413 for a JSON body over `json_max_bytes`, 400 when the next chunk of
    any body takes longer than `read_timeout` seconds to arrive."""

    def __init__(self, app: ASGIApp, json_max_bytes: int, read_timeout: float) -> None:
        self.app = app
        self.json_max_bytes = json_max_bytes
        self.read_timeout = read_timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        query = scope.get("query_string", b"")
        if query and scope["path"].startswith(API_PATHS):
            repeated = _repeated(query)
            if repeated is not None:
                # FastAPI would take the last of them: a request that says two things for
                # one parameter is refused instead of half-read.
                # 422, as FastAPI answers a query parameter of the wrong type.
                detail = f"query.{repeated}: may be given only once"
                await _problem(send, 422, "validation_error", "Validation failed", detail)
                return
        headers = dict(scope["headers"])
        is_json = _is_json(headers.get(b"content-type", b""))
        length = headers.get(b"content-length", b"")
        if is_json and length.isdigit() and int(length) > self.json_max_bytes:
            await _too_large(send, self.json_max_bytes)
            return
        received = 0
        body_done = False

        async def guarded() -> Message:
            nonlocal received, body_done
            if body_done:  # e.g. a response listening for the disconnect: no timeout
                return await receive()
            try:
                # asyncio's own timeout: half the CPU of AnyIO's cancel scope (7.5 vs 15 us
                # per read), which every request pays at least once.
                async with asyncio.timeout(self.read_timeout):
                    message = await receive()
            except TimeoutError:
                raise BadRequest(
                    f"The request body stalled for over {self.read_timeout:g} s."
                ) from None
            if message["type"] != "http.request" or not message.get("more_body", False):
                body_done = True
            if message["type"] == "http.request" and is_json:
                received += len(message.get("body", b""))
                if received > self.json_max_bytes:
                    raise TooLarge(f"JSON bodies may be at most {self.json_max_bytes} bytes.")
            return message

        await self.app(scope, guarded, send)


API_PATHS = ("/api/",)


def _repeated(query: bytes) -> str | None:
    """The first parameter name the query string gives more than once, if any."""
    seen: set[str] = set()
    for name, _ in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
        if name in seen:
            return name
        seen.add(name)
    return None


async def _too_large(send: Send, limit: int) -> None:
    detail = f"JSON bodies may be at most {limit} bytes."
    await _problem(send, 413, "too_large", "Too large", detail)


async def _problem(send: Send, status: int, code: str, title: str, detail: str) -> None:
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
    }
    payload = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/problem+json"),
                (b"content-length", str(len(payload)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})
