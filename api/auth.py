"""Who is calling: the admin bearer token guard, and the buyer's identity."""

from __future__ import annotations

import hmac
from typing import Any

from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler

from api.context import Services


def admin_only(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """Guard: `Authorization: Bearer <TICKETS_ADMIN_TOKEN>`."""
    services: Services = connection.app.state.services
    expected = services.settings.admin_token
    scheme, _sep, token = connection.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise NotAuthorizedException(
            "admin bearer token required", headers={"WWW-Authenticate": "Bearer"}
        )
    if not expected or not hmac.compare_digest(token.encode(), expected.encode()):
        raise PermissionDeniedException("invalid admin token")


def buyer_id(claimed_user_id: str) -> str:
    """The buyer placing a booking. For now the body says who they are; when buyers get
    signed tokens, this is the one place that changes."""
    return claimed_user_id
