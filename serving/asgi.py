"""The app factory each uvicorn worker process calls: settings come from ``NUDGE_*`` variables."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from serving.app import create_app
from serving.settings import Settings

__all__ = ["create_from_env"]


def create_from_env() -> FastAPI:
    """``uvicorn serving.asgi:create_from_env --factory --workers 2``."""
    from_environment: dict[str, Any] = {}  # every value comes from NUDGE_* variables
    return create_app(Settings(**from_environment))
