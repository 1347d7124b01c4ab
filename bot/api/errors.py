"""Every answer of `/api/v1` that is not a success: `{"error": code, "detail": words}`.

Routes raise `Refused`; Quart's own errors (404, 405, 413 …) and quart-schema's
validation errors are turned into the same shape for paths under `/api/v1`, and
left as they are elsewhere.
"""

from __future__ import annotations

import orjson
from pydantic import BaseModel
from quart import Quart, Response, request
from quart_schema import RequestSchemaValidationError
from werkzeug.exceptions import HTTPException

from bot.errors import BotError

PREFIX = "/api/v1"


class ApiError(BaseModel):
    """An error, as every `/api/v1` route answers one."""

    error: str
    detail: str


class Refused(BotError):
    """An answer other than success, raised from a route or the token check."""

    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.code, self.detail = status, code, detail


def in_api(path: str) -> bool:
    return path == PREFIX or path.startswith(PREFIX + "/")


def answer(status: int, code: str, detail: str) -> Response:
    response = Response(
        orjson.dumps({"error": code, "detail": detail}),
        status=status,
        content_type="application/json",
    )
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="api"'
    return response


def _invalid(exc: RequestSchemaValidationError) -> str:
    """What was wrong with the request, by field (never the value given)."""
    error = exc.validation_error
    errors = getattr(error, "errors", None)
    if callable(errors):
        parts = [
            f"{'.'.join(str(p) for p in e.get('loc', ())) or 'body'}: {e.get('msg', 'invalid')}"
            for e in errors(include_input=False, include_url=False)
        ]
        return "; ".join(parts) or "the request is not valid"
    return "the request is not valid"


def install(app: Quart) -> None:
    """The error handlers: JSON for `/api/v1`, Quart's own everywhere else."""

    @app.errorhandler(Refused)
    async def refused(exc: Refused) -> Response:
        return answer(exc.status, exc.code, exc.detail)

    @app.errorhandler(RequestSchemaValidationError)
    async def invalid(exc: RequestSchemaValidationError) -> Response:
        return answer(400, "invalid_request", _invalid(exc))

    @app.errorhandler(HTTPException)
    async def http_error(exc: HTTPException) -> Response | HTTPException:
        if not in_api(request.path) or exc.code is None:
            return exc
        code = (exc.name or "error").lower().replace(" ", "_")
        return answer(exc.code, code, exc.description or exc.name or "error")
