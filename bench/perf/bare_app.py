"""The ceiling apps: a bare FastAPI JSON endpoint, and a PUT that reads and drops the body."""

from __future__ import annotations

from fastapi import FastAPI, Request, Response

# FastAPI's native telemetry off, as docstore serves by default (docstore.app.NO_TELEMETRY):
# the ceiling is the same stack, without importing docstore into it.
app = FastAPI(telemetry={"tracing": False, "metrics": False, "logs": False})


@app.get("/json")
async def bare_json() -> dict[str, str]:
    """The cheapest JSON answer the server stack can give."""
    return {"status": "ok"}


@app.put("/discard/{name}")
async def discard(request: Request) -> Response:
    """Read the whole body and drop it (the upload ceiling when nginx is missing)."""
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
    return Response(str(size), status_code=201)
