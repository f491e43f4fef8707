"""The one place where domain errors become HTTP status codes."""

from __future__ import annotations

import re

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from features import Conflict, InvalidRequest, NotFound, NudgeError, Unavailable

__all__ = ["STATUS_BY_ERROR", "install_error_handlers", "printable", "status_for"]

STATUS_BY_ERROR: dict[type[NudgeError], int] = {
    InvalidRequest: 422,
    NotFound: 404,
    Conflict: 409,
    Unavailable: 503,
}


def status_for(error: NudgeError) -> int:
    for kind, status in STATUS_BY_ERROR.items():
        if isinstance(error, kind):
            return status
    return 500


async def _handle_nudge_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, NudgeError)
    status = status_for(error)
    detail: dict[str, object] = {"msg": printable(str(error)), "type": type(error).__name__}
    if isinstance(error, InvalidRequest):
        # Same shape as FastAPI's own 422s, so clients parse one format.
        detail["loc"] = ["body", *_location(error.field)]
    return JSONResponse(status_code=status, content={"detail": [detail]})


def _location(field: str) -> list[str | int]:
    """``candidates[0].channels[1]`` as FastAPI writes locations: candidates, 0, channels, 1.

    >>> _location("candidates[0].channels[1]")
    ['candidates', 0, 'channels', 1]
    """
    parts: list[str | int] = []
    for part in re.sub(r"\[(\d+)\]", r".\1", field).split("."):
        parts.append(int(part) if part.isdigit() else part)
    return parts


def printable(text: str) -> str:
    # A lone surrogate in the input can reach a message; JSON must still encode.
    return text.encode("utf-8", errors="replace").decode("utf-8")


async def _handle_validation_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestValidationError)
    # FastAPI's default handler echoes each bad input back; an input of NaN or a
    # lone surrogate then cannot be encoded and the client gets a 500 instead.
    detail = [
        {
            "loc": [part if isinstance(part, int) else printable(str(part)) for part in e["loc"]],
            "msg": printable(str(e["msg"])),
            "type": str(e["type"]),
        }
        for e in error.errors()
    ]
    return JSONResponse(status_code=422, content={"detail": detail})


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(NudgeError, _handle_nudge_error)
    app.add_exception_handler(RequestValidationError, _handle_validation_error)
