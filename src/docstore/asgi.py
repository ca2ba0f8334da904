"""ASGI entry point for process managers (`uvicorn docstore.asgi:app`)."""

from docstore.app import create_app

app = create_app()
