"""The HTTP API (FastAPI + uvicorn): `create_app(settings)` and `serve(...)`."""

from waybillguard.entrypoints.http.app import create_app
from waybillguard.entrypoints.http.common import API_PREFIX
from waybillguard.entrypoints.http.server import serve

__all__ = ["API_PREFIX", "create_app", "serve"]
