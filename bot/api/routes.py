"""The `/api/v1` blueprint, its OpenAPI document and the routes so far.

Routes are validated and described by quart-schema from the same pydantic
models, and the document is served at `/api/v1/openapi.json` (no token needed:
it describes, it holds no data). Every route needs a bearer token
(`bot.api.auth`); what a role may do is `bot.support.staff.RIGHTS`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from typing import Any, Literal, TypeVar

from pydantic import BaseModel
from quart import Blueprint, Quart, Response
from quart_schema import (
    OpenAPIProvider,
    QuartSchema,
    document_response,
    validate_querystring,
    validate_response,
)
from werkzeug.routing import Rule

from bot.api import errors
from bot.api.auth import authenticator, deps, require
from bot.api.errors import PREFIX, ApiError
from bot.config import Settings

OPENAPI = f"{PREFIX}/openapi.json"
F = TypeVar("F", bound=Callable[..., Any])


class ConversationsQuery(BaseModel):
    state: Literal["waiting", "mine", "all"] = "waiting"


class ConversationOut(BaseModel):
    """A handed-off conversation: `id` is opaque (never the number)."""

    id: str
    state: Literal["waiting", "claimed"]
    waiting_since: str | None
    assignee: str | None
    language: str
    law: str
    number: str | None  # masked: the last three digits
    profile_name: str | None
    window_open: bool  # free text may be sent (the person wrote in the last 24 hours)
    window_until: str | None


class Conversations(BaseModel):
    conversations: list[ConversationOut]


class _ApiOnly(OpenAPIProvider):
    """The document describes `/api/v1`, not the webhook or the simulator."""

    def generate_rules(self) -> list[Rule]:  # type: ignore[override]
        return [rule for rule in super().generate_rules() if rule.rule.startswith(PREFIX + "/")]


def _refusals(func: F) -> F:
    """Document the error answers every route may give."""
    for status in (400, 401, 403, 429):
        func = document_response(ApiError, status)(func)
    return func


def create_blueprint(settings: Settings) -> Blueprint:
    bp = Blueprint("api", __name__, url_prefix=PREFIX)
    bp.before_app_request(authenticator(settings, OPENAPI))

    @bp.get("/conversations")
    @validate_querystring(ConversationsQuery)
    @validate_response(Conversations, 200)
    @_refusals
    async def conversations(query_args: ConversationsQuery) -> Conversations:
        """Handed-off conversations: waiting (agents, supervisors), the caller's own
        (`mine`), or all (supervisors). Opening the profile names is audited
        (`staff_read`)."""
        who = require(f"conversations.{query_args.state}")
        shown = await deps().queue.listing(who, query_args.state)
        return Conversations(conversations=[ConversationOut(**asdict(c)) for c in shown])

    return bp


def install(app: Quart, settings: Settings) -> None:
    """Register the API on the app: the blueprint, its errors and its OpenAPI document."""
    plain = app.make_response
    QuartSchema(
        app,
        openapi_path=OPENAPI,
        redoc_ui_path=None,
        scalar_ui_path=None,
        swagger_ui_path=None,
        info={"title": "WhatsApp bot support and privacy API", "version": "1"},
        security_schemes={"bearer": {"type": "http", "scheme": "bearer"}},
        security=[{"bearer": []}],
        openapi_provider_class=_ApiOnly,
    )
    converting = app.make_response  # quart-schema's: models and dataclasses to JSON

    async def make_response(result: Any) -> Any:
        """A ready `Response` (every webhook answer) skips the models' conversion."""
        return await (plain if isinstance(result, Response) else converting)(result)

    app.make_response = make_response  # type: ignore[method-assign]
    errors.install(app)
    app.register_blueprint(create_blueprint(settings))
